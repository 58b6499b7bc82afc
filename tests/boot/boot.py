#!/usr/bin/env python3
"""Boots an env's EC2 instances, as the emulator knows them, each in a box of
its own (namespaces, an overlay of /, an IMDS stub, stand-ins for the system
tools), by doing with their user data what cloud-init does; judges each boot.

  boot.py --endpoint URL [--account ACCOUNT] --project P --env E --out DIR
          [--wait-instances N] [--time-scale 0.01] [--only NAME,...]
          [--deadline SECONDS] [--fault [NAME:]FAULT] [--fail-fast] [--together]

Run as root with the venv's python. See tests/boot/README.md.
"""
import argparse
import base64
import gzip
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
import botocore.config

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from box_init import is_master, splice  # noqa: E402

DEFAULT_ACCOUNT = "123456789012"


class Harness:
    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.cluster = os.path.join(self.out, "cluster")
        self.procs = {}
        self.loops = []
        self.servers = []
        self.tmpdirs = []
        self.lock = threading.Lock()
        u = urllib.parse.urlparse(args.endpoint)
        self.target = (u.hostname, u.port or (443 if u.scheme == "https" else 80))
        if u.scheme != "http":
            raise SystemExit("boot.py: the endpoint must be http:// (the emulator)")

    # ------------------------------------------------------------ AWS
    def client(self, service, region="us-east-1"):
        c = boto3.client(service, region_name=region, endpoint_url=self.args.endpoint,
                         aws_access_key_id="testing", aws_secret_access_key="testing",
                         config=botocore.config.Config(retries={"max_attempts": 3}))
        if self.args.account:
            acct = self.args.account

            def add_header(request, **_kw):
                request.headers["x-moto-account-id"] = acct
            c.meta.events.register("before-sign.*.*", add_header)
        return c

    def instances(self):
        ec2 = self.client("ec2", self.args.region)
        res = ec2.describe_instances(Filters=[
            {"Name": "tag:scopectl:project", "Values": [self.args.project]},
            {"Name": "tag:scopectl:env", "Values": [self.args.env]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        out = []
        for r in res["Reservations"]:
            for i in r["Instances"]:
                tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                sid = tags.get("scopectl:id", "")
                name = sid[len("ec2/instance/"):] if sid.startswith("ec2/instance/") else (sid or i["InstanceId"])
                out.append((name, i))
        return out

    def wait(self):
        n, deadline = self.args.wait_instances, time.time() + 600
        ssm = self.client("ssm", self.args.region)
        param = "/scopectl/%s/%s/pki/ca" % (self.args.project, self.args.env)
        while True:
            have = len(self.instances())
            try:
                ssm.get_parameter(Name=param)
                pki = True
            except ssm.exceptions.ParameterNotFound:
                pki = False
            if have >= n and pki:
                return
            if time.time() > deadline:
                raise SystemExit("boot.py: after 10 minutes %d of %d instances, PKI %s" % (have, n, "present" if pki else "missing"))
            time.sleep(2)

    def describe(self, name, inst):
        ec2 = self.client("ec2", self.args.region)
        iid = inst["InstanceId"]
        ud = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
        raw = base64.b64decode(ud.get("UserData", {}).get("Value", "") or "")
        # cloud-init unpacks gzipped user data by its magic bytes (util.decomp_gzip).
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        user_data = raw.decode()
        role, role_arn, profile_arn = None, None, None
        if inst.get("IamInstanceProfile"):
            profile_arn = inst["IamInstanceProfile"]["Arn"]
            iam = self.client("iam", self.args.region)
            prof = iam.get_instance_profile(InstanceProfileName=profile_arn.split("/")[-1])["InstanceProfile"]
            if prof["Roles"]:
                role, role_arn = prof["Roles"][0]["RoleName"], prof["Roles"][0]["Arn"]
        creds = None
        if role_arn and not self.args.static_credentials:
            # The instance's credentials are a session of its role, as IMDS
            # hands out; the emulator then answers them in the role's account.
            try:
                sts = self.client("sts", self.args.region)
                creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=iid)["Credentials"]
                creds = {k: creds[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
            except Exception as e:  # noqa: BLE001
                print("boot.py: %s: assume-role %s failed (%s): IMDS serves 'testing'" % (name, role_arn, e))
        return {
            "name": name, "instance_id": iid, "private_ip": inst["PrivateIpAddress"],
            "private_dns": inst.get("PrivateDnsName") or "", "az": inst["Placement"]["AvailabilityZone"],
            "role": role, "profile_arn": profile_arn, "user_data": user_data, "credentials": creds,
            "ami": inst.get("ImageId"), "type": inst.get("InstanceType"),
        }

    def volumes(self, info):
        """The EBS volumes attached to the instance: a sparse file per
        volume id in DIR/volumes, attached to a loop device."""
        ec2 = self.client("ec2", self.args.region)
        deadline = time.time() + (60 if self.args.wait_instances else 0)
        while True:
            vols = ec2.describe_volumes(Filters=[
                {"Name": "attachment.instance-id", "Values": [info["instance_id"]]},
                {"Name": "attachment.status", "Values": ["attached"]}])["Volumes"]
            vols = [v for v in vols if not any(a.get("Device") in ("/dev/sda1", "/dev/xvda") for a in v["Attachments"])]
            if vols or time.time() > deadline or not is_master(info["name"]):
                break
            time.sleep(2)
        out = []
        os.makedirs(os.path.join(self.out, "volumes"), exist_ok=True)
        for v in vols:
            vid = v["VolumeId"]
            img = os.path.join(self.out, "volumes", vid + ".img")
            if not os.path.exists(img):
                with open(img, "wb") as f:
                    f.truncate(64 << 20)
            loop = subprocess.run(["losetup", "--find", "--show", img], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout.strip()
            with self.lock:
                self.loops.append(loop)
            st = os.stat(loop)
            paths = ["/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + vid.replace("-", ""),
                     "/dev/xvdf", loop]
            out.append({"id": vid, "loop": loop, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "paths": paths, "image": img})
        return out

    # ------------------------------------------------------- forwarders
    def forwarder(self, path):
        target = self.target

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                t = socket.create_connection(target, timeout=10)
                t.settimeout(None)
                splice(self.request, t)

        class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        if os.path.exists(path):
            os.unlink(path)
        s = S(path, H)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        with self.lock:
            self.servers.append((s, path))

    # ------------------------------------------------------------- boot
    def boot(self, info):
        name = info["name"]
        d = os.path.join(self.out, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(os.path.join(d, "state"))
        os.makedirs(os.path.join(d, ".box"))
        sock = os.path.join(d, "aws.sock")
        if len(sock) > 100:
            t = tempfile.mkdtemp(prefix="scb-")
            self.tmpdirs.append(t)
            sock = os.path.join(t, "aws.sock")
        self.forwarder(sock)
        vols = self.volumes(info) if is_master(name) else []
        fault = ",".join(f.split(":", 1)[1] if ":" in f else f for f in self.args.fault
                         if ":" not in f or f.split(":", 1)[0] == name)
        cfg = {
            "name": name, "out": d, "state": os.path.join(d, "state"), "cluster": self.cluster,
            "box_dir": os.path.join(d, ".box"), "sock": sock, "sock_dir": os.path.dirname(sock),
            "aws_port": self.target[1], "harness": HERE, "python": sys.executable,
            "time_scale": self.args.time_scale, "private_ip": info["private_ip"],
            "account": self.args.account or DEFAULT_ACCOUNT, "user_data": info["user_data"],
            "credentials": info["credentials"], "volumes": vols, "fault": fault,
            "fault_seconds": self.args.fault_seconds,
            "metadata": {"instance-id": info["instance_id"], "local-hostname": info["private_dns"],
                         "local-ipv4": info["private_ip"], "availability-zone": info["az"],
                         "role": info["role"], "profile-arn": info["profile_arn"],
                         "ami-id": info["ami"], "instance-type": info["type"]},
        }
        with open(os.path.join(d, "box.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        t0 = time.time()
        with open(os.path.join(d, "box.log"), "w") as log:
            p = subprocess.Popen(["unshare", "--mount", "--net", "--pid", "--uts", "--ipc", "--fork",
                                  "--kill-child", "--propagation", "private",
                                  sys.executable, os.path.join(HERE, "box_init.py"), os.path.join(d, "box.json")],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            with self.lock:
                self.procs[name] = p
            timed_out = False
            try:
                p.wait(timeout=self.args.deadline)
            except subprocess.TimeoutExpired:
                timed_out = True
                self.kill(p)
            with self.lock:
                self.procs.pop(name, None)
        for v in vols:
            self.detach(v["loop"])
        return self.judge(info, d, time.time() - t0, timed_out, p.returncode)

    def kill(self, p):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def detach(self, loop):
        for _ in range(10):
            if subprocess.run(["losetup", "-d", loop], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.3)
        with self.lock:
            if loop in self.loops:
                self.loops.remove(loop)

    def cleanup(self):
        with self.lock:
            procs = list(self.procs.values())
        for p in procs:
            self.kill(p)
        for s, path in self.servers:
            s.shutdown()
            s.server_close()
            if os.path.exists(path):
                os.unlink(path)
        self.servers = []
        for loop in list(self.loops):
            self.detach(loop)
        for t in self.tmpdirs:
            shutil.rmtree(t, ignore_errors=True)
        for name in os.listdir(self.out) if os.path.isdir(self.out) else []:
            b = os.path.join(self.out, name, ".box")
            if os.path.isdir(b) and not os.path.ismount(b):
                shutil.rmtree(b, ignore_errors=True)

    # ------------------------------------------------------------ verdict
    def judge(self, info, d, seconds, timed_out, rc):
        name = info["name"]
        try:
            result = json.load(open(os.path.join(d, "result.json")))
        except (OSError, ValueError):
            result = {"steps": [], "setup_error": "box exited %s without a result (see %s/box.log)" % (rc, d)}
        steps = result.get("steps", [])
        # Statuses of steps that finished before a deadline kill.
        try:
            for ln in open(os.path.join(d, "runcmd.status")):
                i, st, t0, t1 = ln.split()
                steps[int(i)].update(status=int(st), seconds=round(float(t1) - float(t0), 2))
        except (OSError, IndexError, ValueError):
            pass
        verdict = None
        try:
            verdict = json.load(open(os.path.join(d, "state", "kubeadm-verdict.json")))
        except (OSError, ValueError):
            pass
        rep = {"name": name, "instance_id": info["instance_id"], "node_name": info["private_dns"],
               "steps": steps, "stages": result.get("stages", []), "ok": False, "rule": None,
               "message": None, "step": None, "seconds": round(seconds, 2), "kubeadm": verdict,
               "token_left": result.get("token_left")}
        if verdict and (verdict.get("node") or verdict.get("node_name")):
            rep["node_name"] = verdict.get("node") or verdict.get("node_name")

        def violations():
            vs = (verdict or {}).get("violations") or []
            if not vs:
                return None, None
            v = vs[0]
            if isinstance(v, dict):
                return v.get("rule") or v.get("check") or "kubeadm", v.get("message") or json.dumps(v)
            return "kubeadm", str(v)

        def tail(i):
            try:
                lines = [x for x in open(os.path.join(d, "runcmd-%d.log" % i)).read().splitlines() if x.strip()]
            except OSError:
                return ""
            return " | ".join(lines[-3:])

        failed = next((i for i, s in enumerate(steps) if s.get("status") != 0), None)
        pip_violations = []
        try:
            pip_violations = [json.loads(x) for x in open(os.path.join(d, "state", "pip-violations.jsonl")) if x.strip()]
        except (OSError, ValueError):
            pass
        if result.get("setup_error"):
            rep.update(step="(box)", rule="box-setup", message=result["setup_error"])
        elif pip_violations:
            # Whatever the script made of it: a pip install that checks no hashes fails the boot.
            rep.update(step=steps[failed]["line"] if failed is not None else "(runcmd)",
                       rule="pip-without-hashes", message=pip_violations[0].get("message"))
        elif timed_out and (failed is None or steps[failed].get("status") is None):
            i = failed if failed is not None else max(len(steps) - 1, 0)
            rep.update(step=steps[i]["line"] if steps else "(cloud-init)", rule="deadline",
                       message="still running after %ss (box killed); output: %s" % (self.args.deadline, tail(i) or "none"))
        elif failed is not None:
            st = steps[failed]
            rule, msg = violations()
            if not rule or not st["line"].split()[0].endswith(("kubeadm", "scopectl-etcd")):
                rule, msg = "exit %s" % st.get("status"), tail(failed)
            rep.update(step=st["line"], rule=rule, message=msg)
        elif verdict is None:
            rep.update(step=steps[-1]["line"] if steps else "(runcmd)", rule="no-kubeadm-verdict",
                       message="kubeadm never ran: no %s/state/kubeadm-verdict.json" % d)
        elif not verdict.get("ok"):
            rule, msg = violations()
            rep.update(step=next((s["line"] for s in steps if "kubeadm" in s["line"] or "scopectl-etcd start" in s["line"]),
                                 steps[-1]["line"] if steps else ""),
                       rule=rule or "kubeadm", message=msg or "kubeadm-verdict.json says not ok")
        else:
            want = "init" if name == "master-0" else "join"
            action = verdict.get("action") or verdict.get("command") or verdict.get("phase") or want
            if want not in str(action):
                rep.update(step=steps[-1]["line"] if steps else "", rule="kubeadm-action",
                           message="kubeadm %s, expected %s" % (action, want))
            elif not is_master(name) and result.get("token_left"):
                # scopectl issue 26: a worker deletes its join token once it has joined (box_init.join_token_scan).
                rep.update(step=next((s["line"] for s in reversed(steps) if "join" in s["line"].split()),
                                     steps[-1]["line"] if steps else "(runcmd)"),
                           rule="scopectl/join-token-left",
                           message="the join token is still on the node after its join, in %s" % ", ".join(result["token_left"]))
            else:
                rep["ok"] = True
        return rep

    def print_report(self, rep):
        w = max(len(rep["name"]), 8)
        lines = []
        for s in rep["stages"]:
            lines.append("%-*s  [%s]  (cloud-init %s)  (%.1f s)" % (w, rep["name"], "ok" if s["status"] == 0 else "fail",
                                                                  s["stage"], s["seconds"]))
        for s in rep["steps"]:
            st = s.get("status")
            tag = "ok" if st == 0 else ("not run" if st is None else "exit %d" % st)
            secs = "(%.1f s)" % s["seconds"] if s.get("seconds") is not None else ""
            lines.append("%-*s  [%s]  %s  %s" % (w, rep["name"], tag, s["line"], secs))
        if rep["ok"]:
            kv = rep.get("kubeadm") or {}
            lines.append("%-*s  verdict: ok  (%s, node %s, %.1f s)" % (w, rep["name"], kv.get("action", "kubeadm"),
                                                                     rep["node_name"], rep["seconds"]))
        else:
            lines.append("%-*s  verdict: FAIL  %s: %s: %s" % (w, rep["name"], rep["step"], rep["rule"], rep["message"]))
        print("\n".join(lines), flush=True)

    def run(self):
        if self.args.wait_instances:
            self.wait()
        found = self.instances()
        only = set(self.args.only.split(",")) if self.args.only else None
        infos = [self.describe(n, i) for n, i in sorted(found, key=lambda x: x[0]) if not only or n in only]
        if not infos:
            raise SystemExit("boot.py: no instances of %s/%s at %s" % (self.args.project, self.args.env, self.args.endpoint))
        os.makedirs(self.cluster, exist_ok=True)

        def idx(n):
            try:
                return int(n.rsplit("-", 1)[1])
            except (IndexError, ValueError):
                return 0
        masters = sorted([i for i in infos if is_master(i["name"])], key=lambda i: idx(i["name"]))
        nodes = sorted([i for i in infos if not is_master(i["name"])], key=lambda i: (i["name"]))
        results = {}

        def boot_masters():
            # One at a time: a control-plane join needs the members before it.
            for m in masters:
                results[m["name"]] = self.boot(m)
                if self.args.fail_fast and not results[m["name"]]["ok"]:
                    return False
            return True

        def go(i):
            results[i["name"]] = self.boot(i)

        def wait(threads):
            for t in threads:
                while t.is_alive():
                    t.join(0.5)

        if self.args.together:
            # As EC2 starts them: every instance at once, the nodes' joins
            # waiting for the API behind the balancer.
            threads = [threading.Thread(target=boot_masters, daemon=True)]
            threads += [threading.Thread(target=go, args=(i,), daemon=True) for i in nodes]
            for t in threads:
                t.start()
            wait(threads)
        elif boot_masters():
            threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in nodes]
            for t in threads:
                t.start()
            wait(threads)
        reports = []
        for i in masters + nodes:
            if i["name"] in results:
                self.print_report(results[i["name"]])
                reports.append(results[i["name"]])
        nd = os.path.join(self.cluster, "nodes")
        registered = sorted(f[:-5] for f in os.listdir(nd) if f.endswith(".json")) if os.path.isdir(nd) else []
        with open(os.path.join(self.out, "report.json"), "w") as f:
            json.dump({"instances": reports, "nodes": registered}, f, indent=1)
        print("registered nodes: %s" % (", ".join(registered) or "none"))
        bad = [r for r in reports if not r["ok"]]
        if bad:
            r = bad[0]
            print("boot failed: %s: %s: %s: %s" % (r["name"], r["step"], r["rule"], r["message"]))
            return 1
        print("boot ok: %d instances" % len(reports))
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--account")
    ap.add_argument("--project", required=True)
    ap.add_argument("--env", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    ap.add_argument("--wait-instances", type=int, default=0)
    ap.add_argument("--time-scale", type=float, default=0.01)
    ap.add_argument("--only")
    ap.add_argument("--deadline", type=float, default=120, help="real seconds per box")
    ap.add_argument("--fault", action="append", default=[],
                    help="dpkg-lock, snap-fails or pypi-unreachable, for every box or NAME:FAULT for one")
    ap.add_argument("--fault-seconds", type=float, default=4, help="how long dpkg-lock holds the lock")
    ap.add_argument("--fail-fast", action="store_true", help="stop after the first master that fails")
    ap.add_argument("--static-credentials", action="store_true",
                    help="IMDS serves the key 'testing' instead of a session of the instance's role "
                         "(for an endpoint that maps every request to one account, as the tests' proxy does)")
    ap.add_argument("--together", action="store_true",
                    help="boot every instance at once, as EC2 does (default: masters first, then the nodes)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("boot.py: needs root (namespaces, mounts, loop devices)")
    h = Harness(args)

    def term(*_a):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, term)
    signal.signal(signal.SIGINT, term)  # even when started with SIGINT ignored (a background job)
    signal.signal(signal.SIGHUP, term)
    rc = 1
    try:
        rc = h.run()
    except KeyboardInterrupt:
        print("boot.py: interrupted", file=sys.stderr)
        rc = 130
    finally:
        h.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
