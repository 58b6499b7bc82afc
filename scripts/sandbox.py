#!/usr/bin/env python3
"""The local AWS sandbox: a stand-in for a user's existing database, and
read-back helpers for the tests. Talks to the emulator at AWS_ENDPOINT_URL.

  sandbox.py prepare --db NAME [--no-subnet-group]   RDS instance in the default VPC
  sandbox.py plant --project P --env E               foreign resources in that VPC
  sandbox.py snapshot                                everything, as JSON
"""
import argparse
import json
import os
import sys

import boto3

REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def clients():
    kw = dict(region_name=REGION, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    return boto3.client("ec2", **kw), boto3.client("rds", **kw)


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


def snapshot(_args):
    """Everything in the emulator that the tests check, as JSON."""
    ec2, rds = clients()

    def tagmap(x):
        return {t["Key"]: t["Value"] for t in x.get("Tags", []) or []}
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
        "databases": [{"id": d["DBInstanceIdentifier"], "status": d["DBInstanceStatus"],
                       "vpc": (d.get("DBSubnetGroup") or {}).get("VpcId"),
                       "security_groups": [g["VpcSecurityGroupId"] for g in d.get("VpcSecurityGroups", [])]}
                      for d in rds.describe_db_instances()["DBInstances"]],
    }
    print(json.dumps(snap, indent=1, sort_keys=True))


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
    sub.add_parser("snapshot").set_defaults(func=snapshot)
    args = p.parse_args()
    if "AWS_ENDPOINT_URL" not in os.environ:
        sys.exit("AWS_ENDPOINT_URL is not set: this script only talks to the local emulator")
    args.func(args)


if __name__ == "__main__":
    main()
