"""PID 1 of one boot box (run by boot.py under `unshare --mount --net --pid
--uts --ipc --fork --kill-child --propagation private`).

  box_init.py CONFIG.json

Builds the instance's root (an overlay of / on a tmpfs, with fresh /proc,
/sys, /dev, /tmp, /run), its network (lo with 169.254.169.254, ens5 with the
private address), installs the stand-ins, chroots, starts the IMDS stub and
the loopback forwarder to the emulator, and then does what cloud-init does
with the user data: hostname, write_files, packages, runcmd; then, on a
worker, searches what the boot wrote for the join token it should have
deleted. Writes result.json (and the logs) to the instance's directory, which
is bind-mounted at the same path. See README.md.
"""
import base64
import datetime
import gzip
import http.server
import glob
import json
import os
import re
import secrets
import shutil
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time

import yaml

LIBEXEC = "/usr/libexec/scopectl-boot"
STATE = "/var/lib/scopectl-boot"
RUNCMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"


def is_master(name):
    """The harness's notion of an instance's role, as boot.py's: master-N, else a worker (node-N)."""
    return name.startswith("master")


def pump(a, b):
    """Copies a -> b until EOF, then half-closes b."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def splice(a, b):
    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join()
    a.close()
    b.close()


class Console:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, msg):
        line = "[%s] scopectl-boot: %s\n" % (time.strftime("%H:%M:%S"), msg)
        with self.lock, open(self.path, "a") as f:
            f.write(line)


def sh(*argv, check=True):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stdout.strip()))
    return r.stdout


def build_root(cfg, log):
    base = cfg["box_dir"]
    sh("mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % cfg.get("tmpfs_mib", 1024), "scopectl-box", base)
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(base, d))
    root = os.path.join(base, "root")
    sh("mount", "-t", "overlay", "scopectl-root", "-o",
       "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (base, base), root)
    R = lambda p: root + p  # noqa: E731
    sh("mount", "-t", "proc", "proc", R("/proc"))
    sh("mount", "-t", "sysfs", "-o", "ro", "sysfs", R("/sys"))
    for d in ("/tmp", "/run"):
        sh("mount", "-t", "tmpfs", "-o", "mode=%s" % ("1777" if d == "/tmp" else "0755"), "tmpfs", R(d))
    os.makedirs(R("/run/lock"), mode=0o1777, exist_ok=True)
    # The harness and its virtualenv stay visible where they live under /tmp
    # or /run (a clone in a temporary directory, as CI's may be): bound in,
    # read-only, over the box's fresh tmpfs.
    venv = os.path.dirname(os.path.dirname(cfg["python"]))
    for src in (cfg["harness"], venv):
        if any(src == d or src.startswith(d + "/") for d in ("/tmp", "/run")):
            os.makedirs(R(src), exist_ok=True)
            sh("mount", "--bind", "-o", "ro", src, R(src))
    # /dev: a tmpfs with the host's harmless character devices bound in.
    sh("mount", "-t", "tmpfs", "-o", "mode=0755", "dev", R("/dev"))
    for n in ("null", "zero", "random", "urandom", "full", "tty"):
        open(R("/dev/" + n), "w").close()
        sh("mount", "--bind", "/dev/" + n, R("/dev/" + n))
    for n, t in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                 ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(t, R("/dev/" + n))
    os.mkdir(R("/dev/shm"))
    sh("mount", "-t", "tmpfs", "-o", "mode=1777", "shm", R("/dev/shm"))
    os.mkdir(R("/dev/pts"))
    # The etcd volume: the loop device's node, under the names EC2 gives it.
    for vol in cfg.get("volumes", []):
        for path in vol["paths"]:
            os.makedirs(os.path.dirname(R(path)), exist_ok=True)
            os.mknod(R(path), 0o660 | 0o060000, os.makedev(vol["major"], vol["minor"]))
        log("etcd volume %s: %s at %s" % (vol["id"], vol["loop"], ", ".join(vol["paths"])))
    # Host directories the box may write: its own, the cluster's, its state.
    for src in (cfg["out"], cfg["cluster"], cfg["sock_dir"]):
        os.makedirs(R(src), exist_ok=True)
        sh("mount", "--bind", src, R(src))
    os.makedirs(R(STATE), exist_ok=True)
    sh("mount", "--bind", cfg["state"], R(STATE))
    install_standins(cfg, root)
    setup_python(cfg, root, log)
    return root


def write(path, text, mode=0o755):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def install_standins(cfg, root):
    R = lambda p: root + p  # noqa: E731
    here, py = cfg["harness"], cfg["python"]
    lib = R(LIBEXEC)
    os.makedirs(lib + "/pkg", exist_ok=True)
    shutil.copy2(os.path.join(here, "standins", "standin.py"), lib + "/standin.py")
    shutil.copy2(os.path.join(here, "fixtures", "Release.key"), lib + "/Release.key")
    # The real curl and sleep move aside; the stand-ins exec them.
    shutil.copy2(R("/usr/bin/curl"), lib + "/curl")
    shutil.copy2(R("/usr/bin/sleep"), lib + "/sleep")
    shutil.copy2(os.path.join(here, "standins", "sleep"), R("/usr/bin/sleep"))

    def shim(tool):
        return '#!/bin/sh\nexec "${SCOPECTL_BOOT_PYTHON:-%s}" %s/standin.py %s "$@"\n' % (py, LIBEXEC, tool)

    for tool, path in (("apt-get", "/usr/bin/apt-get"), ("apt-mark", "/usr/bin/apt-mark"),
                       ("snap", "/usr/bin/snap"), ("systemctl", "/usr/bin/systemctl"),
                       ("modprobe", "/usr/sbin/modprobe"), ("sysctl", "/usr/sbin/sysctl"),
                       ("swapoff", "/usr/sbin/swapoff"), ("curl", "/usr/bin/curl")):
        write(R(path), shim(tool))
    # Installed by `apt-get install` (the package's payload), absent before:
    # an Ubuntu image has none of these.
    for tool in ("containerd", "kubelet", "kubectl", "cni-plugin"):
        write(lib + "/pkg/" + tool, shim(tool))
    kubeadm = os.path.join(here, "kubeadm")
    if os.path.exists(kubeadm):
        shutil.copy2(kubeadm, lib + "/pkg/kubeadm")
    else:
        write(lib + "/pkg/kubeadm", shim("kubeadm-placeholder"))
    for path in ("/usr/bin/containerd", "/usr/bin/kubelet", "/usr/bin/kubeadm", "/usr/bin/kubectl",
                 "/usr/bin/ctr", "/usr/local/bin/aws", "/usr/bin/aws"):
        if os.path.lexists(R(path)):
            os.unlink(R(path))
    # dpkg's frontend lock, as on the image (the dpkg-lock fault holds it).
    os.makedirs(R("/var/lib/dpkg"), exist_ok=True)
    open(R("/var/lib/dpkg/lock-frontend"), "a").close()
    os.chmod(R("/var/lib/dpkg/lock-frontend"), 0o640)
    # An EC2 Ubuntu image's fstab (the host's may be a placeholder).
    write(R("/etc/fstab"), "LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\n"
          "LABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n", 0o644)


# pip in the box: the real pip, offline. /etc/pip.conf points it at the
# wheelhouse scripts/setup-venv fills beside the harness's venv (the wheels
# templates/aws-cli.txt pins; pip checks their hashes itself). The box's
# python3 (the first on the runcmd PATH) gets a sitecustomize that records
# every pip run and refuses `pip install` without --require-hashes, and its
# ensurepip (python3-venv's payload, as on Ubuntu) is hidden until
# `apt-get install python3-venv`.
SITECUSTOMIZE = r'''# scopectl-boot: records pip runs in the box; pip install must check hashes.
def _scopectl_boot_pip():
    import json, os, re, sys, time
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if "-m" in argv[1:] and argv[argv.index("-m", 1) + 1:argv.index("-m", 1) + 2] == ["pip"]:
        args = argv[argv.index("-m", 1) + 2:]
    elif len(argv) > 1 and re.search(r"(^|/)pip(3(\.\d+)?)?$", argv[1]):
        args = argv[2:]
    else:
        return
    cmd = next((a for a in args if not a.startswith("-")), "")
    state = os.environ.get("SCOPECTL_BOOT_STATE", "%(state)s")
    rec = {"tool": "pip", "argv": args, "python": sys.executable, "time": time.time()}
    with open(os.path.join(state, "calls.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")
    if cmd == "install" and "--require-hashes" not in args:
        msg = ("pip install without --require-hashes: %%s (every pip install on an instance must "
               "check the pinned hashes: pip install --require-hashes -r FILE)" %% " ".join(argv))
        with open(os.path.join(state, "pip-violations.jsonl"), "a") as f:
            f.write(json.dumps(dict(rec, message=msg)) + "\n")
        sys.stderr.write("scopectl-boot: %%s\n" %% msg)
        sys.stderr.flush()
        os._exit(1)


try:
    _scopectl_boot_pip()
except Exception:  # noqa: BLE001
    pass
try:
    exec(open("%(orig)s").read())
except OSError:
    pass
'''


def box_python():
    for d in RUNCMD_PATH.split(":"):
        if os.access(os.path.join(d, "python3"), os.X_OK):
            return os.path.join(d, "python3")
    return None


def setup_python(cfg, root, log):
    R = lambda p: root + p  # noqa: E731
    venv = os.path.dirname(os.path.dirname(cfg["python"]))
    house = os.path.join(venv, "wheelhouse")
    if "pypi-unreachable" in cfg.get("fault", "").split(","):
        house = LIBEXEC + "/no-wheels"
        os.makedirs(R(house), exist_ok=True)
    write(R("/etc/pip.conf"), "[global]\nno-index = true\nfind-links = %s\n" % house, 0o644)
    if not os.path.isdir(R(house)):
        log("pip: no wheelhouse %s (scripts/setup-venv fills it): pip installs will fail" % house)
    else:
        log("pip: /etc/pip.conf: no-index, find-links %s (%d files)" % (house, len(os.listdir(R(house)))))
    py = box_python()
    if not py:
        log("python3: none on the box's PATH")
        return
    stdlib = sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])").strip()
    lib = R(LIBEXEC)
    site = R(stdlib + "/sitecustomize.py")
    orig = LIBEXEC + "/sitecustomize.orig.py"
    if os.path.exists(site):
        shutil.copyfile(site, R(orig))
    write(site, SITECUSTOMIZE % {"state": STATE, "orig": orig}, 0o644)
    ensurepip = R(stdlib + "/ensurepip")
    if os.path.isdir(ensurepip):
        shutil.copytree(ensurepip, lib + "/pkg/ensurepip", symlinks=True)
        shutil.rmtree(ensurepip)
        write(lib + "/pkg/ensurepip.path", stdlib + "/ensurepip\n", 0o644)
    log("python3: %s (stdlib %s): pip runs recorded, ensurepip %s" % (
        py, stdlib, "until python3-venv is installed" if os.path.exists(lib + "/pkg/ensurepip.path") else "missing"))


def setup_network(cfg, log):
    ip = cfg["private_ip"]
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
    # No dummy driver in this kernel: ens5 is one end of a veth pair whose
    # other end stays in the box, unaddressed (no route to anything).
    try:
        sh("ip", "link", "add", "ens5", "type", "dummy")
    except RuntimeError:
        sh("ip", "link", "add", "ens5", "type", "veth", "peer", "name", "ens5-peer")
        sh("ip", "link", "set", "ens5-peer", "up")
    sh("ip", "addr", "add", ip + "/20", "dev", "ens5")
    sh("ip", "link", "set", "ens5", "up")
    got = sh("hostname", "-I").split()
    if not got or got[0] != ip:
        raise RuntimeError("hostname -I says %r, not %s first" % (got, ip))
    log("network: lo 127.0.0.1 169.254.169.254; ens5 %s/20; hostname -I: %s" % (ip, " ".join(got)))


# ------------------------------------------------------------------ IMDS
def imds_server(cfg, log):
    tokens = {}
    md = cfg["metadata"]
    role = md.get("role")
    az = md["availability-zone"]
    region = az[:-1]

    def creds():
        c = cfg.get("credentials") or {}
        exp = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
        return json.dumps({"Code": "Success", "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "Type": "AWS-HMAC", "AccessKeyId": c.get("AccessKeyId", "testing"),
                           "SecretAccessKey": c.get("SecretAccessKey", "testing"),
                           "Token": c.get("SessionToken", "testing"),
                           "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}, indent=2)

    tree = {
        "instance-id": md["instance-id"], "local-hostname": md["local-hostname"],
        "hostname": md["local-hostname"], "local-ipv4": md["local-ipv4"],
        "placement/availability-zone": az, "placement/region": region,
        "ami-id": md.get("ami-id", "ami-00000000"), "instance-type": md.get("instance-type", "t3.medium"),
    }
    if role:
        tree["iam/security-credentials/"] = role
        tree["iam/info"] = json.dumps({"Code": "Success", "InstanceProfileArn": md.get("profile-arn", ""),
                                       "InstanceProfileId": "AIPA0000000000000000"})
    ident = json.dumps({"region": region, "instanceId": md["instance-id"], "availabilityZone": az,
                        "accountId": cfg["account"], "privateIp": md["local-ipv4"],
                        "imageId": tree["ami-id"], "instanceType": tree["instance-type"],
                        "architecture": "x86_64", "version": "2017-09-30"}, indent=2)

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            with open(os.path.join(STATE, "imds.log"), "a") as f:
                f.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % a))

        def reply(self, code, body="", ctype="text/plain"):
            b = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_PUT(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if self.path != "/latest/api/token":
                return self.reply(404, "Not Found")
            if self.headers.get("X-Forwarded-For"):
                return self.reply(403, "Forbidden")
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                return self.reply(400, "Bad Request")
            if not 1 <= ttl <= 21600:
                return self.reply(400, "Bad Request")
            tok = base64.b64encode(secrets.token_bytes(40)).decode()
            tokens[tok] = time.time() + ttl
            self.send_response(200)
            self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(tok)))
            self.end_headers()
            self.wfile.write(tok.encode())

        def do_GET(self):
            tok = self.headers.get("X-aws-ec2-metadata-token")
            if not tok or tokens.get(tok, 0) < time.time():
                return self.reply(401, "Unauthorized")
            p = self.path.split("?")[0]
            if p == "/latest/user-data":
                return self.reply(200, cfg["user_data"])
            if p == "/latest/dynamic/instance-identity/document":
                return self.reply(200, ident, "application/json")
            if not p.startswith("/latest/meta-data/"):
                return self.reply(404, "Not Found")
            k = p[len("/latest/meta-data/"):]
            if role and k.rstrip("/") == "iam/security-credentials/" + role:
                return self.reply(200, creds())
            if k in tree:
                return self.reply(200, tree[k])
            if k.rstrip("/") in tree and not k.endswith("/"):
                return self.reply(200, tree[k.rstrip("/")])
            # A directory listing.
            kids = sorted({(t[len(k):].split("/")[0] + ("/" if "/" in t[len(k):].rstrip("/") or t.endswith("/") else ""))
                           for t in tree if t.startswith(k) and t != k})
            if kids and (k == "" or k.endswith("/")):
                return self.reply(200, "\n".join(kids))
            if kids:
                self.send_response(301)
                self.send_header("Location", p + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return self.reply(404, "Not Found")

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = S(("169.254.169.254", 80), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    log("IMDS (IMDSv2 only) at http://169.254.169.254/ for %s, role %s" % (md["instance-id"], role))


def aws_forwarder(cfg, log):
    """127.0.0.1:<port> in the box -> the Unix socket boot.py forwards to the emulator."""
    port, path = cfg["aws_port"], cfg["sock"]
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind(("127.0.0.1", port))
    lsn.listen(64)

    def serve():
        while True:
            c, _ = lsn.accept()
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(path)
            except OSError:
                c.close()
                continue
            threading.Thread(target=splice, args=(c, u), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    log("AWS endpoint http://127.0.0.1:%d (forwarded through %s)" % (port, path))


# ------------------------------------------------------------ cloud-init
def shellify(cmdlist):
    """cloud-init's util.shellify: list items single-quoted and joined,
    strings verbatim, one per line."""
    lines = []
    for args in cmdlist:
        if isinstance(args, (list, tuple)):
            lines.append(" ".join("'%s'" % str(a).replace("'", "'\\''") for a in args))
        elif isinstance(args, str):
            lines.append(args)
        else:
            raise TypeError("runcmd item %r is neither a list nor a string" % (args,))
    return lines


def display(args):
    return " ".join(str(a) for a in args) if isinstance(args, (list, tuple)) else str(args)


def write_files(items, log):
    for it in items or []:
        path = it["path"]
        content = it.get("content", "")
        enc = (it.get("encoding") or "").lower()
        data = content.encode() if isinstance(content, str) else bytes(content)
        if enc in ("b64", "base64"):
            data = base64.b64decode(data)
        elif enc in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
            data = gzip.decompress(base64.b64decode(data))
        elif enc in ("gz", "gzip"):
            data = gzip.decompress(data)
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        with open(path, "ab" if it.get("append") else "wb") as f:
            f.write(data)
        perms = it.get("permissions", "0644")
        os.chmod(path, int(str(perms), 8) if isinstance(perms, str) else perms)
        owner = it.get("owner", "root:root")
        sh("chown", owner, path)
        log("write_files: %s (%s, %s, %d bytes)" % (path, perms, owner, len(data)))


# ------------------------------------------------- the join token left behind
# scopectl issue 26: a worker deletes its copy of the kubeadm join token once it
# has joined (`scopectl-state join` ends with `rm -f /etc/kubernetes/scopectl/token
# /etc/kubernetes/scopectl/kubeadm.yaml`). After runcmd, every regular file the boot
# wrote is searched for the token and for its secret half alone. See README.md,
# "The join token left behind".
TOKEN_RE = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")   # kubeadm's BootstrapTokenPattern
TOKEN_FILE = "/etc/kubernetes/scopectl/token"
SCAN_MAX_BYTES = 5 << 20
# The harness's own files in the box, not the boot's: the stand-ins (copied in
# before the boot) and the wrapped runcmd script. The state dir and DIR/<name>,
# DIR/cluster are bind mounts, never in the upper dir.
SCAN_SKIP = (LIBEXEC, STATE, "/run/scopectl-boot-runcmd.sh")


def token_needles(tokens):
    """{bytes to look for: "token" | "secret"}: each well-formed token and its secret half."""
    out = {}
    for t in tokens:
        if TOKEN_RE.fullmatch(t or ""):
            out[t.encode()] = "token"
            out.setdefault(t.split(".", 1)[1].encode(), "secret")
    return out


def scan_tree(top, needles, shown=None, dir_fd=None, skip=(), max_bytes=SCAN_MAX_BYTES, stats=None):
    """Regular files under `top` (relative to dir_fd if given) holding any needle, as
    [(path as the box sees it, "token"|"secret")]. `shown` is the box's path of `top`.
    Symlinks are not followed, other mounts (a different st_dev) not entered, files
    over max_bytes not read (listed in stats["skipped_large"])."""
    shown = shown or top
    stats = stats if stats is not None else {}
    stats.setdefault("files", 0)
    stats.setdefault("bytes", 0)
    stats.setdefault("skipped_large", [])
    hits = []
    skip = tuple(s.rstrip("/") for s in skip)

    def skipped(path):
        return any(path == s or path.startswith(s + "/") for s in skip)

    try:
        dev = os.stat(top, dir_fd=dir_fd).st_dev
    except OSError:
        return hits
    for dirpath, dirnames, filenames, dfd in os.fwalk(top, dir_fd=dir_fd):
        rel = os.path.relpath(dirpath, top)
        base = shown if rel == "." else os.path.join(shown, rel)
        keep = []
        for d in sorted(dirnames):
            try:
                if os.stat(d, dir_fd=dfd, follow_symlinks=False).st_dev == dev and not skipped(os.path.join(base, d)):
                    keep.append(d)
            except OSError:
                pass
        dirnames[:] = keep
        for name in sorted(filenames):
            path = os.path.join(base, name)
            if skipped(path):
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):   # not symlinks, overlay whiteouts (0/0 character devices), sockets, fifos
                hits += scan_file(name, needles, stats, shown=path, dir_fd=dfd, max_bytes=max_bytes)
    return hits


def scan_file(path, needles, stats, shown=None, dir_fd=None, max_bytes=SCAN_MAX_BYTES):
    """[(shown, "token"|"secret")] if the regular file holds a needle (a file over max_bytes is listed in
    stats["skipped_large"] instead), else []."""
    shown = shown or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return []
            data = f.read(max_bytes + 1)
        except OSError:
            return []
    if len(data) > max_bytes:
        stats.setdefault("skipped_large", []).append(shown)
        return []
    stats["files"] = stats.get("files", 0) + 1
    stats["bytes"] = stats.get("bytes", 0) + len(data)
    found = {kind for needle, kind in needles.items() if needle in data}
    return [(shown, "token" if "token" in found else "secret")] if found else []


def cluster_tokens(cluster):
    """The bootstrap tokens of DIR/cluster/cluster.json (master-0's kubeadm init registered them; the
    kubeadm stand-in lets a join through only with one of them)."""
    try:
        with open(os.path.join(cluster, "cluster.json")) as f:
            return [str(t.get("token")) for t in json.load(f).get("tokens") or [] if isinstance(t, dict)]
    except (OSError, ValueError, AttributeError):
        return []


def ssm_token(cfg, log):
    """The SSM parameter the box's `scopectl-state fetch-join` reads into the token file (its name from the user
    data's `wait_get NAME > /etc/kubernetes/scopectl/token` under /etc/scopectl/env's SCOPECTL_STATE), read as the
    box read it: through its own endpoint with the instance's credentials. None when not found."""
    m = re.search(r"wait_get\s+(\S+)\s*>\s*%s\b" % re.escape(TOKEN_FILE), cfg.get("user_data") or "")
    env = {}
    try:
        for ln in open("/etc/scopectl/env"):
            k, _, v = ln.strip().partition("=")
            env[k] = v
    except OSError:
        pass
    if not m or not env.get("SCOPECTL_STATE"):
        return None
    name = env["SCOPECTL_STATE"] + m.group(1)
    try:
        import boto3
        import botocore.config
        c = cfg.get("credentials") or {}
        ssm = boto3.client("ssm", region_name=env.get("SCOPECTL_REGION") or cfg["metadata"]["availability-zone"][:-1],
                           endpoint_url="http://127.0.0.1:%d" % cfg["aws_port"],
                           aws_access_key_id=c.get("AccessKeyId", "testing"),
                           aws_secret_access_key=c.get("SecretAccessKey", "testing"),
                           aws_session_token=c.get("SessionToken"),
                           config=botocore.config.Config(connect_timeout=5, read_timeout=10,
                                                         retries={"max_attempts": 2}))
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"].strip()
    except Exception as e:  # noqa: BLE001
        log("join token scan: could not read %s: %s" % (name, e))
        return None


def known_tokens(cfg, log):
    """{token: [where it was found]}: DIR/cluster/cluster.json's tokens, the SSM parameter the box fetched, and
    the token file itself if the boot left it."""
    found = {}
    for t in cluster_tokens(cfg["cluster"]):
        found.setdefault(t, []).append("cluster.json")
    t = ssm_token(cfg, log)
    if t:
        found.setdefault(t, []).append("ssm")
    try:
        with open(TOKEN_FILE) as f:
            found.setdefault(f.read().strip(), []).append("token-file")
    except (OSError, UnicodeDecodeError):
        pass
    return {t: s for t, s in found.items() if TOKEN_RE.fullmatch(t)}


def join_token_scan(upper_fd, out, tokens, log=lambda m: None, tmpfs=("/tmp", "/run", "/dev/shm")):
    """Searches what the boot wrote for the tokens: the overlay's upper dir (the root file system's changes, at
    dir fd upper_fd), the box's own tmpfs (/tmp, /run, /dev/shm), and the runcmd logs (DIR/<name>/runcmd-*.log:
    cloud-init-output.log on an instance). Returns (token_left: sorted paths as the box sees them, scan: a
    summary, without the token)."""
    needles = token_needles(tokens)
    stats = {}
    if not needles:
        return [], dict(stats, error="no join token known (no cluster.json tokens, SSM parameter or token file)")
    hits = []
    if upper_fd is not None:
        hits += scan_tree(".", needles, shown="/", dir_fd=upper_fd, skip=SCAN_SKIP, stats=stats)
    for d in tmpfs:
        if os.path.isdir(d):
            hits += scan_tree(d, needles, skip=SCAN_SKIP, stats=stats)
    for lf in sorted(glob.glob(os.path.join(glob.escape(out), "runcmd-*.log"))):
        hits += scan_file(lf, needles, stats)
    left = sorted({p for p, _ in hits})
    stats["hits"] = [{"path": p, "match": k} for p, k in sorted(set(hits))]
    stats["tokens"] = len([k for k in needles.values() if k == "token"])
    for p, k in sorted(set(hits)):
        log("join token scan: %s holds the join token%s" % (p, "'s secret" if k == "secret" else ""))
    return left, stats


def run(cfg):
    out = cfg["out"]
    log = Console(os.path.join(out, "console.log"))
    result = {"name": cfg["name"], "setup_error": None, "steps": [], "stages": []}
    res_path = os.path.join(out, "result.json")

    def save():
        with open(res_path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(res_path + ".tmp", res_path)

    upper_fd = None
    try:
        root = build_root(cfg, log)
        # The overlay's upper dir (all the boot writes to the root file system) is outside the chroot: kept
        # open for the join token scan.
        upper_fd = os.open(os.path.join(cfg["box_dir"], "upper"), os.O_RDONLY | os.O_DIRECTORY)
        setup_network(cfg, log)
        ipname = "ip-" + cfg["private_ip"].replace(".", "-")
        sh("hostname", ipname)
        os.chroot(root)
        os.chdir("/")
        with open("/etc/hostname", "w") as f:
            f.write(ipname + "\n")
        imds_server(cfg, log)
        aws_forwarder(cfg, log)
    except Exception as e:  # noqa: BLE001
        result["setup_error"] = "box setup: %s" % e
        log(result["setup_error"])
        save()
        return 2
    env = {
        "PATH": RUNCMD_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % cfg["aws_port"],
        "AWS_DEFAULT_REGION": cfg["metadata"]["availability-zone"][:-1],
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv4",
        "SCOPECTL_BOOT_STATE": STATE, "SCOPECTL_BOOT_CLUSTER": cfg["cluster"],
        "SCOPECTL_BOOT_PYTHON": cfg["python"],
        "SCOPECTL_BOOT_TIME_SCALE": str(cfg["time_scale"]), "SCOPECTL_BOOT_NAME": cfg["name"],
        "SCOPECTL_BOOT_HARNESS": cfg["harness"], "SCOPECTL_BOOT_FAULT": cfg.get("fault", ""),
        "SCOPECTL_BOOT_KUBEADM_STANDIN": os.path.join(cfg["harness"], "kubeadm_standin.py"),
    }
    os.environ.clear()
    os.environ.update(env)

    def stage(name, fn):
        t0 = time.time()
        try:
            fn()
            result["stages"].append({"stage": name, "status": 0, "seconds": round(time.time() - t0, 2)})
            return True
        except Exception as e:  # noqa: BLE001
            log("%s failed: %s" % (name, e))
            result["stages"].append({"stage": name, "status": 1, "seconds": round(time.time() - t0, 2),
                                     "error": str(e)})
            return False

    try:
        doc = yaml.safe_load(cfg["user_data"])
        if not cfg["user_data"].startswith("#cloud-config") or not isinstance(doc, dict):
            raise ValueError("user data is not #cloud-config")
    except Exception as e:  # noqa: BLE001
        result["setup_error"] = "user data: %s" % e
        log(result["setup_error"])
        save()
        return 2
    log("cloud-config: %d write_files, %d packages, %d runcmd lines"
        % (len(doc.get("write_files") or []), len(doc.get("packages") or []), len(doc.get("runcmd") or [])))

    def set_hostname():
        if doc.get("hostname"):
            sh("hostname", str(doc["hostname"]))
            with open("/etc/hostname", "w") as f:
                f.write(str(doc["hostname"]) + "\n")
            log("hostname: %s" % doc["hostname"])

    def packages():
        def apt(*a):
            r = subprocess.run(["apt-get"] + list(a), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            with open(os.path.join(out, "console.log"), "a") as f:
                f.write(r.stdout)
            if r.returncode:
                raise RuntimeError("apt-get %s: exit %d" % (a[-1] if a else "", r.returncode))
        if doc.get("package_update") or doc.get("packages"):
            apt("update")
        if doc.get("packages"):
            apt("--option=Dpkg::Options::=--force-confold", "--option=Dpkg::options::=--force-unsafe-io",
                "--assume-yes", "--quiet", "install", *[p if isinstance(p, str) else "=".join(p) for p in doc["packages"]])
            log("packages: %s" % " ".join(map(str, doc["packages"])))

    stage("set_hostname", set_hostname)
    stage("write_files", lambda: write_files(doc.get("write_files"), log))
    stage("package_update_upgrade_install", packages)
    save()

    holder = None
    if "dpkg-lock" in cfg.get("fault", "").split(","):
        # Something else (unattended-upgrades) holds dpkg's lock as runcmd starts.
        holder = subprocess.Popen(["flock", "/var/lib/dpkg/lock-frontend", LIBEXEC + "/sleep",
                                   str(cfg.get("fault_seconds", 4))])
        time.sleep(0.3)
        log("fault dpkg-lock: /var/lib/dpkg/lock-frontend held for %ss" % cfg.get("fault_seconds", 4))

    cmds = doc.get("runcmd") or []
    lines = shellify(cmds)
    status = shq(os.path.join(out, "runcmd.status"))
    script = ["#!/bin/sh"]
    for i, line in enumerate(lines):
        lf = os.path.join(out, "runcmd-%d.log" % i)
        cl = os.path.join(out, "console.log")
        script += [
            "printf '%%s\\n' %s >> %s" % (shq("[runcmd %d] %s" % (i, display(cmds[i]))), shq(cl)),
            "__sb_t0=$(date +%s.%N)",
            "{ " + line,
            "} > %s 2>&1 < /dev/null" % shq(lf),
            "__sb_rc=$?",
            "cat %s >> %s" % (shq(lf), shq(cl)),
            "printf '%%s %%s %%s %%s\\n' %d \"$__sb_rc\" \"$__sb_t0\" \"$(date +%%s.%%N)\" >> %s" % (i, status),
            "printf '[runcmd %d] exit %%s\\n' \"$__sb_rc\" >> %s" % (i, shq(cl)),
        ]
    os.makedirs("/var/lib/cloud/instance/scripts", exist_ok=True)
    with open("/var/lib/cloud/instance/scripts/runcmd", "w") as f:
        f.write("#!/bin/sh\n" + "\n".join(lines) + "\n")
    os.chmod("/var/lib/cloud/instance/scripts/runcmd", 0o700)
    with open("/run/scopectl-boot-runcmd.sh", "w") as f:
        f.write("\n".join(script) + "\n")
    result["steps"] = [{"line": display(c), "status": None, "seconds": None} for c in cmds]
    save()
    log("runcmd: %d lines" % len(lines))
    r = subprocess.run(["/bin/sh", "/run/scopectl-boot-runcmd.sh"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.stdout:
        log("runcmd script output: %s" % r.stdout.strip())
    try:
        for ln in open(os.path.join(out, "runcmd.status")):
            i, rc, t0, t1 = ln.split()
            result["steps"][int(i)].update(status=int(rc), seconds=round(float(t1) - float(t0), 2))
    except OSError:
        pass
    if r.returncode and not all(s["status"] is not None for s in result["steps"]):
        log("runcmd script exited %d before its last line" % r.returncode)
    if holder:
        holder.wait()
    log("cloud-init finished")
    if is_master(cfg["name"]):
        # Masters keep theirs: they hold the CA keys anyway, and a restart re-runs kubeadm with the rendered config.
        result.update(token_left=None, token_scan={"skipped": "master"})
    else:
        t0 = time.time()
        tokens = known_tokens(cfg, log)
        left, scan = join_token_scan(upper_fd, out, tokens, log)
        scan.update(sources=sorted({s for ss in tokens.values() for s in ss}), seconds=round(time.time() - t0, 2))
        result.update(token_left=left, token_scan=scan)
        log("join token scan: %d files, %d bytes, %d skipped as over %d bytes: %s" % (
            scan.get("files", 0), scan.get("bytes", 0), len(scan.get("skipped_large", [])), SCAN_MAX_BYTES,
            ", ".join(left) if left else scan.get("error") or "clean"))
    save()
    return 0


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


def main():
    cfg = json.load(open(sys.argv[1]))
    rc = run(cfg)
    sys.stdout.flush()
    os._exit(rc)


if __name__ == "__main__":
    main()
