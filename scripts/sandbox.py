#!/usr/bin/env python3
"""The local AWS sandbox: a stand-in for a user's existing database, and
read-back helpers for the tests. Talks to the emulator at AWS_ENDPOINT_URL.

  sandbox.py prepare --db NAME [--no-subnet-group]   RDS instance in the default VPC
  sandbox.py plant --project P --env E               foreign resources in that VPC
  sandbox.py plant-k8s --cluster C --vpc V --subnets S,S --nodes-sg G [--tag owned|shared] [--name N]
                                                     a Service's classic ELB and its k8s-elb-* group
  sandbox.py plant-instance --subnet S [--sg G] [--public]   an instance
  sandbox.py snapshot                                everything, as JSON
  sandbox.py cluster --project P --env E [--dir D] [--instances N] [--booted B]
                                                     what the test API server needs to stand in for
                                                     the env's masters: the stored API server and CA
                                                     bundles (to D/apiserver.pem, D/ca.pem) and one
                                                     node per running instance, as JSON; fails (exit
                                                     status 1) while the PKI is missing or fewer than
                                                     N instances are pending or running; with --booted,
                                                     only the nodes the boot harness (its --out B) joined,
                                                     once it has finished
  sandbox.py moto --port P                           the emulator, until standard input closes
  sandbox.py serve                                   the commands above, one JSON line each on
                                                     standard input, answered on standard output

SCOPECTL_MOTO_ACCOUNT=123456789012 picks the emulator's account (moto's
x-moto-account-id header), so tests sharing one emulator never see each
other's resources.
"""
import argparse
import contextlib
import io
import json
import os
import sys

import boto3

REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
# One boto3 client per (service, account, endpoint): `serve` answers many
# commands in one process, and building a client costs more than most calls.
_CLIENTS = {}


def client(service):
    account = os.environ.get("SCOPECTL_MOTO_ACCOUNT")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    key = (service, account, endpoint)
    if key not in _CLIENTS:
        c = boto3.client(service, region_name=REGION, endpoint_url=endpoint)
        if account:
            def add_header(request, **_kw):
                request.headers["x-moto-account-id"] = account
            c.meta.events.register("before-sign.*.*", add_header)
        _CLIENTS[key] = c
    return _CLIENTS[key]


def clients():
    return client("ec2"), client("rds")


def elb_client():
    return client("elb")


def default_vpc(ec2):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return vpcs[0]["VpcId"]


def prepare(args):
    ec2, rds = clients()
    vpc = default_vpc(ec2)
    # A real default VPC has an internet gateway; moto's has none.
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"]
    if not igws:
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    try:
        db = rds.describe_db_instances(DBInstanceIdentifier=args.db)["DBInstances"][0]
        print(json.dumps({"db": args.db, "vpc": vpc, "existing": True}))
        return
    except rds.exceptions.DBInstanceNotFoundFault:
        pass
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{args.db}-sg"]}])["SecurityGroups"]
    sg = groups[0]["GroupId"] if groups else ec2.create_security_group(
        GroupName=f"{args.db}-sg", Description="database", VpcId=vpc)["GroupId"]
    kw = {}
    if not args.no_subnet_group:
        subnets = sorted(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                       {"Name": "default-for-az", "Values": ["true"]}])["Subnets"],
                         key=lambda s: s["AvailabilityZone"])
        name = f"{args.db}-subnets"
        try:
            rds.create_db_subnet_group(DBSubnetGroupName=name, DBSubnetGroupDescription="database",
                                       SubnetIds=[s["SubnetId"] for s in subnets[:2]])
        except rds.exceptions.DBSubnetGroupAlreadyExistsFault:
            pass
        kw["DBSubnetGroupName"] = name
    rds.create_db_instance(DBInstanceIdentifier=args.db, DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="scope", MasterUserPassword="not-a-real-password", AllocatedStorage=20,
                           VpcSecurityGroupIds=[sg], **kw)
    print(json.dumps({"db": args.db, "vpc": vpc, "security_group": sg}))


def plant(args):
    """Resources a neighbour owns in the shared VPC: named like ours, tagged
    for another env or project, or tagged shared for our cluster."""
    ec2, _ = clients()
    vpc = default_vpc(ec2)
    cluster = f"{args.project}-{args.env}"
    out = {}

    def tags(extra):
        return [{"ResourceType": "security-group", "Tags": extra}]
    out["sg_other_env"] = ec2.create_security_group(
        GroupName=f"{cluster}-nodes-lookalike", Description="scopectl: Kubernetes nodes", VpcId=vpc,
        TagSpecifications=tags([{"Key": "scopectl:project", "Value": args.project},
                                {"Key": "scopectl:env", "Value": args.env + "-other"},
                                {"Key": "scopectl:id", "Value": "ec2/security-group/nodes"},
                                {"Key": "Name", "Value": f"{cluster}-nodes"}]))["GroupId"]
    out["sg_other_project"] = ec2.create_security_group(
        GroupName=f"{cluster}-masters-lookalike", Description="other project", VpcId=vpc,
        TagSpecifications=tags([{"Key": "scopectl:project", "Value": args.project + "x"},
                                {"Key": "scopectl:env", "Value": args.env},
                                {"Key": "scopectl:id", "Value": "ec2/security-group/masters"}]))["GroupId"]
    out["sg_shared"] = ec2.create_security_group(
        GroupName="team-b-shared", Description="shared with the cluster", VpcId=vpc,
        TagSpecifications=tags([{"Key": f"kubernetes.io/cluster/{cluster}", "Value": "shared"},
                                {"Key": "Name", "Value": f"{cluster}-elb"}]))["GroupId"]
    out["subnet"] = ec2.create_subnet(
        VpcId=vpc, CidrBlock="172.31.96.0/24", AvailabilityZone=f"{REGION}a",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [
            {"Key": "Name", "Value": f"{cluster}-nodes-{REGION}a"},
            {"Key": f"kubernetes.io/cluster/{cluster}", "Value": "shared"},
            {"Key": "scopectl:project", "Value": args.project},
            {"Key": "scopectl:env", "Value": args.env + "-other"}]}])["Subnet"]["SubnetId"]
    print(json.dumps(out))


def plant_k8s(args):
    """What the Kubernetes AWS cloud provider makes for a Service of type
    LoadBalancer: a group k8s-elb-NAME tagged for the cluster, a classic ELB in
    the cluster's subnets using it, and a rule on the nodes' group letting the
    ELB in."""
    ec2, _ = clients()
    elb = elb_client()
    tag = {"Key": f"kubernetes.io/cluster/{args.cluster}", "Value": args.tag}
    sg = ec2.create_security_group(
        GroupName=f"k8s-elb-{args.name}", Description="Security group for Kubernetes ELB", VpcId=args.vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [tag]}])["GroupId"]
    elb.create_load_balancer(
        LoadBalancerName=args.name, Subnets=args.subnets.split(","), SecurityGroups=[sg],
        Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 30080}],
        Tags=[tag, {"Key": "kubernetes.io/service-name", "Value": "default/web"}])
    if args.nodes_sg:
        ec2.authorize_security_group_ingress(GroupId=args.nodes_sg, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 30080, "ToPort": 30080,
            "UserIdGroupPairs": [{"GroupId": sg}]}])
    print(json.dumps({"load_balancer": args.name, "security_group": sg}))


def plant_instance(args):
    ec2, _ = clients()
    kw = {"SecurityGroupIds": [args.sg]} if args.sg else {}
    if args.public:
        kw = {"NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": args.subnet, "AssociatePublicIpAddress": True,
                                     **({"Groups": [args.sg]} if args.sg else {})}]}
    else:
        kw["SubnetId"] = args.subnet
    out = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro", **kw)
    print(json.dumps({"instance": out["Instances"][0]["InstanceId"]}))


def snapshot(_args):
    """Everything in the emulator that the tests check, as JSON."""
    ec2, rds = clients()

    def tagmap(x):
        return {t["Key"]: t["Value"] for t in x.get("Tags", []) or []}
    role_list = roles()
    snap = {
        "vpcs": [{"id": v["VpcId"], "cidr": v["CidrBlock"], "default": v.get("IsDefault", False), "tags": tagmap(v)}
                 for v in ec2.describe_vpcs()["Vpcs"]],
        "subnets": [{"id": s["SubnetId"], "vpc": s["VpcId"], "cidr": s["CidrBlock"], "zone": s["AvailabilityZone"],
                     "public_ip": s.get("MapPublicIpOnLaunch", False), "tags": tagmap(s)}
                    for s in ec2.describe_subnets()["Subnets"]],
        "route_tables": [{"id": t["RouteTableId"], "vpc": t["VpcId"], "tags": tagmap(t),
                          "main": any(a.get("Main") for a in t.get("Associations", [])),
                          "subnets": [a["SubnetId"] for a in t.get("Associations", []) if a.get("SubnetId")],
                          "routes": [{"destination": r.get("DestinationCidrBlock"), "gateway": r.get("GatewayId"),
                                      "peering": r.get("VpcPeeringConnectionId")} for r in t.get("Routes", [])]}
                         for t in ec2.describe_route_tables()["RouteTables"]],
        "security_groups": [{"id": g["GroupId"], "vpc": g.get("VpcId"), "name": g["GroupName"], "tags": tagmap(g)}
                            for g in ec2.describe_security_groups()["SecurityGroups"]],
        "rules": [{"id": r["SecurityGroupRuleId"], "group": r["GroupId"], "egress": r["IsEgress"],
                   "protocol": r["IpProtocol"], "from": r.get("FromPort"), "to": r.get("ToPort"),
                   "source_group": (r.get("ReferencedGroupInfo") or {}).get("GroupId"), "cidr": r.get("CidrIpv4"),
                   "tags": tagmap(r)}
                  for r in ec2.describe_security_group_rules()["SecurityGroupRules"]],
        "internet_gateways": [{"id": g["InternetGatewayId"], "vpcs": [a["VpcId"] for a in g.get("Attachments", [])],
                               "tags": tagmap(g)} for g in ec2.describe_internet_gateways()["InternetGateways"]],
        "peerings": [{"id": p["VpcPeeringConnectionId"], "status": p["Status"]["Code"],
                      "requester": p["RequesterVpcInfo"]["VpcId"], "accepter": p["AccepterVpcInfo"]["VpcId"],
                      "requester_dns": p["RequesterVpcInfo"].get("PeeringOptions", {}).get("AllowDnsResolutionFromRemoteVpc", False),
                      "accepter_dns": p["AccepterVpcInfo"].get("PeeringOptions", {}).get("AllowDnsResolutionFromRemoteVpc", False),
                      "tags": tagmap(p)}
                     for p in ec2.describe_vpc_peering_connections()["VpcPeeringConnections"]],
        "load_balancers": load_balancers(),
        "instances": [{"id": i["InstanceId"], "state": i["State"]["Name"], "subnet": i.get("SubnetId"),
                       "type": i.get("InstanceType"), "image": i.get("ImageId"), "tags": tagmap(i),
                       "private_ip": i.get("PrivateIpAddress"),
                       "launched": i["LaunchTime"].isoformat() if i.get("LaunchTime") else None}
                      for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": [
                          "pending", "running", "shutting-down", "stopping", "stopped"]}])["Reservations"]
                      for i in r["Instances"]],
        "roles": role_list,
        "instance_profiles": instance_profiles(role_list),
        "parameters": parameters(),
        "volumes": [{"id": v["VolumeId"], "zone": v["AvailabilityZone"], "size": v["Size"],
                     "type": v.get("VolumeType"), "state": v["State"],
                     "attachments": [{"instance": a.get("InstanceId"), "device": a.get("Device"),
                                      "state": a.get("State")} for a in v.get("Attachments", [])],
                     "tags": tagmap(v)}
                    for page in ec2.get_paginator("describe_volumes").paginate() for v in page["Volumes"]],
        # OwnerIds=['self'] is what AWS needs; moto ignores it (and lists the
        # snapshots of its thousand stock AMIs), so the owner-id filter too.
        "snapshots": [{"id": s["SnapshotId"], "volume": s.get("VolumeId"), "state": s["State"],
                       "description": s.get("Description", ""), "tags": tagmap(s)}
                      for page in ec2.get_paginator("describe_snapshots").paginate(
                          OwnerIds=["self"], Filters=[{"Name": "owner-id", "Values": [account_id()]}])
                      for s in page["Snapshots"]],
        "images": [{"id": i["ImageId"], "name": i.get("Name"), "created": i.get("CreationDate"), "tags": tagmap(i)}
                   for i in ec2.describe_images(Owners=["self"])["Images"]],
        "databases": [{"id": d["DBInstanceIdentifier"], "status": d["DBInstanceStatus"],
                       "vpc": (d.get("DBSubnetGroup") or {}).get("VpcId"),
                       "security_groups": [g["VpcSecurityGroupId"] for g in d.get("VpcSecurityGroups", [])]}
                      for d in rds.describe_db_instances()["DBInstances"]],
    }
    print(json.dumps(snap, indent=1, sort_keys=True))


def cluster(args):
    """What the test API server (tests/apiserver) needs to stand in for the
    env's masters: the state store's API server certificate and key, the
    cluster CA bundle, and one node per running instance (named by its
    private DNS name, as the cloud provider names nodes). With --dir the PEM
    bundles go to files there (0600) and only their paths are printed. Until
    the PKI is stored and --instances instances are pending or running, it
    exits with a message and writes nothing: a caller polls it while `up`
    runs."""
    ssm = client("ssm")
    prefix = f"/scopectl/{args.project}/{args.env}/pki/"
    values = {}
    for name in ("apiserver", "ca"):
        try:
            values[name] = ssm.get_parameter(Name=prefix + name, WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            sys.exit(f"{prefix}{name} is not in the state store: run `scopectl up` first")
    ec2 = client("ec2")
    nodes = []
    for r in ec2.describe_instances(Filters=[
            {"Name": "tag:scopectl:project", "Values": [args.project]},
            {"Name": "tag:scopectl:env", "Values": [args.env]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]:
        for i in r["Instances"]:
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            address = tags.get("scopectl:id", "")
            nodes.append({"name": i.get("PrivateDnsName") or i["InstanceId"], "ip": i.get("PrivateIpAddress", ""),
                          "master": address.startswith("ec2/instance/master-"), "address": address,
                          "zone": i["Placement"]["AvailabilityZone"], "id": i["InstanceId"],
                          "type": i.get("InstanceType", "")})
    if len(nodes) < args.instances:
        sys.exit(f"{len(nodes)} of {args.instances} instances of {args.project}-{args.env} are pending or running")
    if args.booted:
        # The boot harness (tests/boot/boot.py --out DIR) decides which
        # instances are nodes: those whose kubeadm init or join registered
        # them, once it has judged every boot.
        if not os.path.exists(os.path.join(args.booted, "report.json")):
            sys.exit(f"the boot harness has not finished in {args.booted}")
        joined = os.path.join(args.booted, "cluster", "nodes")
        names = {f[:-5] for f in os.listdir(joined) if f.endswith(".json")} if os.path.isdir(joined) else set()
        nodes = [n for n in nodes if n["name"] in names]
    nodes.sort(key=lambda n: (not n["master"], n["address"]))
    out = {"nodes": nodes}
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        for name, value in values.items():
            path = os.path.join(args.dir, f"{name}.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value)
            out[name] = path
    else:
        out.update(values)
    print(json.dumps(out))


def iam_client():
    return client("iam")


def account_id():
    """The account the snapshot reads (moto's x-moto-account-id, else the
    caller's)."""
    account = os.environ.get("SCOPECTL_MOTO_ACCOUNT")
    if account:
        return account
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if endpoint not in _ACCOUNTS:
        _ACCOUNTS[endpoint] = client("sts").get_caller_identity()["Account"]
    return _ACCOUNTS[endpoint]


_ACCOUNTS = {}


def roles():
    """Every role with its tags and inline policies (names and documents):
    GetAccountAuthorizationDetails holds what ListRoleTags, ListRolePolicies
    and GetRolePolicy would give per role, in one call."""
    iam = iam_client()
    out = []
    for page in iam.get_paginator("get_account_authorization_details").paginate(Filter=["Role"]):
        for r in page["RoleDetailList"]:
            documents = {p["PolicyName"]: p["PolicyDocument"] for p in r.get("RolePolicyList", [])}
            out.append({"id": r["RoleName"], "path": r["Path"],
                        "tags": {t["Key"]: t["Value"] for t in r.get("Tags", [])},
                        "policies": sorted(documents), "documents": documents})
    return out


def instance_profiles(role_list):
    """Every instance profile, with its roles' inline policy documents: a
    change to a profile's permissions shows on the profile too."""
    documents = {r["id"]: r["documents"] for r in role_list}
    return [{"id": p["InstanceProfileName"], "path": p["Path"],
             "roles": [r["RoleName"] for r in p.get("Roles", [])],
             "role_policies": {r["RoleName"]: documents.get(r["RoleName"], {}) for r in p.get("Roles", [])},
             "tags": {t["Key"]: t["Value"] for t in p.get("Tags", [])}}
            for page in iam_client().get_paginator("list_instance_profiles").paginate()
            for p in page["InstanceProfiles"]]


def parameters():
    """Every SSM parameter's name, type, description and tags, never its
    value. Tags come from one GetResources (the tagging API, the same tags)
    rather than a ListTagsForResource per parameter. A parameter's ARN
    names it without its leading slash (`/a` and `a` are one parameter)."""
    ssm = client("ssm")
    params = [p for page in ssm.get_paginator("describe_parameters").paginate(PaginationConfig={"PageSize": 50})
              for p in page["Parameters"]]
    tags = {}
    if params:
        tagging = client("resourcegroupstaggingapi")
        for page in tagging.get_paginator("get_resources").paginate(ResourceTypeFilters=["ssm:parameter"]):
            for r in page["ResourceTagMappingList"]:
                _, sep, name = r["ResourceARN"].partition(":parameter/")
                if sep:
                    tags[name] = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
    return [{"id": p["Name"], "name": p["Name"], "type": p["Type"], "description": p.get("Description", ""),
             "tags": tags.get(p["Name"].removeprefix("/"), {})}
            for p in params]


def load_balancers():
    elb = elb_client()
    lbs = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    tags = {}
    if lbs:
        names = [lb["LoadBalancerName"] for lb in lbs]
        for i in range(0, len(names), 20):
            for d in elb.describe_tags(LoadBalancerNames=names[i:i + 20])["TagDescriptions"]:
                tags[d["LoadBalancerName"]] = {t["Key"]: t.get("Value", "") for t in d.get("Tags", [])}
    return [{"name": lb["LoadBalancerName"], "id": lb["LoadBalancerName"], "vpc": lb.get("VPCId"),
             "subnets": lb.get("Subnets", []), "dns": lb.get("DNSName"),
             "instances": [i["InstanceId"] for i in lb.get("Instances", [])],
             "security_groups": lb.get("SecurityGroups", []), "tags": tags.get(lb["LoadBalancerName"], {})}
            for lb in lbs]


def moto(args):
    """The emulator in this process, stopped when standard input closes: a
    test harness that dies, however it dies, takes the emulator with it."""
    import functools
    import logging

    import moto.backends
    import moto.core.responses
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
    from moto.server import ThreadedMotoServer

    # Work moto repeats on every request, done once (same answers, a third
    # less CPU in the test suite): the list of its service packages (a
    # directory scan, under the dispatcher's lock), each response class's
    # method names (inspect.getmembers), and a log line per request.
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules
    moto.core.responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        moto.core.responses.method_names_from_class)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    # An EC2 resource's tags by its id, as moto's own get_tags returns them
    # (an exact resource-id match over every tag of the account): a lookup,
    # not a scan, so a tag-filtered Describe no longer grows with the square
    # of what the account ever held (the soak runs a hundred up/down cycles).
    def get_tags(self):
        if not self.id:
            return []
        rtype = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
        return [{"resource_id": self.id, "key": k, "value": v, "resource_type": rtype}
                for k, v in self.ec2_backend.tags.get(self.id, {}).items()]
    TaggedEC2Resource.get_tags = get_tags
    add_ubuntu_images()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


# Canonical's images of the Ubuntu LTS releases scopectl boots (moto ships
# only 14.04 and 16.04 ones): two builds of 24.04 (gp3 and gp2 names) and
# one of 22.04 (newer than both), with AWS's name scheme, so `cluster.ubuntu` picks the newest
# build of its own release and never another release's.
UBUNTU_IMAGES = [
    ("ami-0a0b24040000c0001", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101", "2026-11-01T10:00:00.000Z"),
    ("ami-0a0b24040000c0002", "ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-20260901", "2026-09-01T10:00:00.000Z"),
    ("ami-0a0b22040000c0003", "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-20261115", "2026-11-15T10:00:00.000Z"),
]


def add_ubuntu_images():
    """Adds UBUNTU_IMAGES to the images every account and region of this
    emulator starts with (after moto's own, when it makes a backend)."""
    import moto.ec2.models.amis as amis
    from moto.core.parse import default_timestamp_parser

    load = amis.AmiBackend._load_amis

    def load_with_ubuntu(self):
        load(self)
        for ami_id, name, created in UBUNTU_IMAGES:
            self.amis[ami_id] = amis.Ami(
                self, ami_id=ami_id, name=name, owner_id="099720109477", public=True,
                state="available", image_location="amazon/" + name, sriov="simple",
                root_device_type="ebs", root_device_name="/dev/sda1",
                description="Canonical, Ubuntu, amd64 server image", image_type="machine",
                architecture="x86_64", virtualization_type="hvm", hypervisor="xen",
                creation_date=default_timestamp_parser(created))
    amis.AmiBackend._load_amis = load_with_ubuntu


def serve(parser):
    """Answers commands read from standard input, one JSON line each
    ({"account": ..., "args": [...]}), with one JSON line each ({"ok": ...,
    "out": ...}): boto3 is imported once, not once per check."""
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("account"):
            os.environ["SCOPECTL_MOTO_ACCOUNT"] = req["account"]
        else:
            os.environ.pop("SCOPECTL_MOTO_ACCOUNT", None)
        out = io.StringIO()
        try:
            args = parser.parse_args(req["args"])
            with contextlib.redirect_stdout(out):
                args.func(args)
            answer = {"ok": True, "out": out.getvalue()}
        except SystemExit as e:
            answer = {"ok": False, "out": out.getvalue(), "err": f"exit {e.code}"}
        except Exception as e:  # reported to the test, which fails with it
            answer = {"ok": False, "out": out.getvalue(), "err": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--db", required=True)
    a.add_argument("--no-subnet-group", action="store_true")
    a.set_defaults(func=prepare)
    a = sub.add_parser("plant")
    a.add_argument("--project", required=True)
    a.add_argument("--env", required=True)
    a.set_defaults(func=plant)
    a = sub.add_parser("plant-k8s")
    a.add_argument("--cluster", required=True)
    a.add_argument("--vpc", required=True)
    a.add_argument("--subnets", required=True)
    a.add_argument("--nodes-sg")
    a.add_argument("--tag", default="owned", choices=["owned", "shared"])
    a.add_argument("--name", default="a1b2c3d4e5f6")
    a.set_defaults(func=plant_k8s)
    a = sub.add_parser("plant-instance")
    a.add_argument("--subnet", required=True)
    a.add_argument("--sg")
    a.add_argument("--public", action="store_true")
    a.set_defaults(func=plant_instance)
    sub.add_parser("snapshot").set_defaults(func=snapshot)
    a = sub.add_parser("cluster")
    a.add_argument("--project", required=True)
    a.add_argument("--env", required=True)
    a.add_argument("--dir")
    a.add_argument("--instances", type=int, default=0)
    a.add_argument("--booted")
    a.set_defaults(func=cluster)
    a = sub.add_parser("moto")
    a.add_argument("--port", type=int, required=True)
    a.set_defaults(func=moto)
    sub.add_parser("serve").set_defaults(func=lambda _args: serve(p))
    args = p.parse_args()
    if args.cmd == "moto":
        return moto(args)
    if "AWS_ENDPOINT_URL" not in os.environ:
        sys.exit("AWS_ENDPOINT_URL is not set: this script only talks to the local emulator")
    args.func(args)


if __name__ == "__main__":
    main()
