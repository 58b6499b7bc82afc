"""The boot harness's stand-ins for the system tools of an Ubuntu EC2 instance.

Installed in the box as /usr/libexec/scopectl-boot/standin.py; each tool's path
(/usr/bin/apt-get, /usr/sbin/sysctl, ...) is a two-line sh script that runs
`$SCOPECTL_BOOT_PYTHON standin.py TOOL ARGS...`. Every invocation is recorded
as a JSON line {"tool", "argv"} in $SCOPECTL_BOOT_STATE/calls.jsonl; what the
tools change (packages, holds, services, modules, sysctls, snaps) is recorded
as JSON files beside it, where the kubeadm stand-in and the tests read it.
See tests/boot/README.md for what each one checks.
"""
import fcntl
import json
import os
import re
import shutil
import sys
import time

STATE = os.environ.get("SCOPECTL_BOOT_STATE", "/var/lib/scopectl-boot")
LIBEXEC = "/usr/libexec/scopectl-boot"
FAULTS = set(f for f in os.environ.get("SCOPECTL_BOOT_FAULT", "").split(",") if f)
DPKG_LOCK = "/var/lib/dpkg/lock-frontend"


def record(tool, argv):
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"tool": tool, "argv": argv, "time": time.time()}) + "\n")


def load(name, default):
    try:
        with open(os.path.join(STATE, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def save(name, value):
    path = os.path.join(STATE, name)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def err(msg, rc=1):
    sys.stderr.write(msg + "\n")
    sys.exit(rc)


def install_file(src, dst, mode=0o755):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(src, "rb") as f:
        data = f.read()
    with open(dst + ".new", "wb") as f:
        f.write(data)
    os.chmod(dst + ".new", mode)
    os.replace(dst + ".new", dst)


# ---------------------------------------------------------------- apt-get
# Packages of the Ubuntu archive the user data may ask for; anything else is
# "Unable to locate package" as on a fresh instance.
UBUNTU = {"apt-transport-https", "ca-certificates", "curl", "gpg", "jq", "containerd",
          "gnupg", "socat", "conntrack", "ebtables", "ethtool", "ipset", "nfs-common",
          "awscli", "unzip", "openssl", "python3-venv"}
# Packages only in the Kubernetes repository (pkgs.k8s.io core:/stable:/vX.Y).
K8S = {"kubelet", "kubeadm", "kubectl", "kubernetes-cni", "cri-tools"}
# What installing a package puts on disk (the payloads of the stand-ins).
PAYLOAD = {
    "containerd": [("pkg/containerd", "/usr/bin/containerd")],
    "kubelet": [("pkg/kubelet", "/usr/bin/kubelet")],
    "kubeadm": [("pkg/kubeadm", "/usr/bin/kubeadm")],
    "kubectl": [("pkg/kubectl", "/usr/bin/kubectl")],
    "kubernetes-cni": [("pkg/cni-plugin", "/opt/cni/bin/" + p)
                       for p in ("bridge", "host-local", "loopback", "portmap", "ptp", "vlan",
                                 "macvlan", "ipvlan", "tuning", "bandwidth", "firewall")],
}


def ensurepip():
    """python3-venv's payload: python3's ensurepip, which box_init.py moved
    aside (without it `python3 -m venv` fails, as on Ubuntu)."""
    try:
        dst = open(os.path.join(LIBEXEC, "pkg", "ensurepip.path")).read().strip()
    except OSError:
        return
    if not os.path.isdir(dst):
        shutil.copytree(os.path.join(LIBEXEC, "pkg", "ensurepip"), dst, symlinks=True)


def k8s_sources():
    """The Kubernetes repositories apt would read after `apt-get update`:
    deb lines for pkgs.k8s.io whose signed-by keyring exists and is a
    dearmored (binary) OpenPGP key, as apt requires for a .gpg keyring."""
    found, problems = [], []
    d = "/etc/apt/sources.list.d"
    files = [os.path.join(d, n) for n in sorted(os.listdir(d))] if os.path.isdir(d) else []
    for path in files + ["/etc/apt/sources.list"]:
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"\s*deb\s+(\[[^\]]*\]\s+)?(https://pkgs\.k8s\.io/core:/stable:/v(\d+\.\d+)/deb/)\s+/\s*$", line)
            if not m:
                continue
            opts, url, minor = m.group(1) or "", m.group(2), m.group(3)
            sb = re.search(r"signed-by=(\S+?)\]?(\s|$)", opts)
            if not sb:
                problems.append("W: GPG error: %s InRelease: The following signatures couldn't be verified "
                                "because the public key is not available: NO_PUBKEY 234654DA9A296436" % url)
                continue
            key = sb.group(1).rstrip("]")
            try:
                head = open(key, "rb").read(64)
            except OSError:
                problems.append("E: The repository '%s  InRelease' is not signed. (no keyring %s)" % (url, key))
                continue
            if head.startswith(b"-----BEGIN") and key.endswith(".gpg"):
                problems.append("W: GPG error: %s InRelease: The key(s) in the keyring %s are ignored as "
                                "the file has an unsupported filetype." % (url, key))
                continue
            found.append({"url": url, "minor": minor, "keyring": key})
    return found, problems


def dpkg_lock(timeout):
    """Takes the dpkg frontend lock as apt does (waiting up to timeout
    seconds, DPkg::Lock::Timeout); returns the open file or exits 100."""
    os.makedirs(os.path.dirname(DPKG_LOCK), exist_ok=True)
    f = open(DPKG_LOCK, "a")
    deadline = time.time() + timeout
    waited = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.time() >= deadline:
                err("E: Could not get lock %s. It is held by process 1 (flock)\n"
                    "N: Be aware that removing the lock file is not a solution and may break your system.\n"
                    "E: Unable to acquire the dpkg frontend lock (%s), is another process using it?"
                    % (DPKG_LOCK, DPKG_LOCK), 100)
            if not waited:
                sys.stderr.write("Waiting for cache lock: Could not get lock %s. It is held by process 1 (flock)\n" % DPKG_LOCK)
                waited = True
            time.sleep(0.2)


def apt_get(argv):
    opts, args, i = {}, [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("-o", "--option"):
            k, _, v = argv[i + 1].partition("=")
            opts[k.lower()] = v
            i += 2
            continue
        if a.startswith("--option="):
            k, _, v = a[len("--option="):].partition("=")
            opts[k.lower()] = v
        elif a.startswith("-"):
            pass  # -y, -q, --assume-yes, --no-install-recommends, ...
        else:
            args.append(a)
        i += 1
    if not args:
        err("E: Invalid operation", 100)
    cmd, pkgs = args[0], args[1:]
    try:
        timeout = float(opts.get("dpkg::lock::timeout", "0"))
    except ValueError:
        timeout = 0.0
    if cmd == "update":
        sources, problems = k8s_sources()
        for p in problems:
            sys.stderr.write(p + "\n")
        save("apt-sources.json", sources)
        for s in sources:
            print("Get:1 %s InRelease [1186 B]" % s["url"])
        print("Reading package lists... Done")
        if any(p.startswith("E:") for p in problems):
            sys.exit(100)
        return
    if cmd in ("upgrade", "dist-upgrade", "autoremove", "clean"):
        lock = dpkg_lock(timeout)
        lock.close()
        return
    if cmd != "install":
        err("E: Invalid operation %s" % cmd, 100)
    lock = dpkg_lock(timeout)
    print("Reading package lists... Done")
    sources = load("apt-sources.json", [])
    held = load("holds.json", {})
    wanted = []
    for p in pkgs:
        name, _, ver = p.partition("=")
        if name in K8S:
            if not sources:
                err("E: Unable to locate package %s" % name, 100)
            if ver and not any(ver.startswith(s["minor"] + ".") for s in sources):
                err("E: Version '%s' for '%s' was not found" % (ver, name), 100)
        elif name not in UBUNTU:
            err("E: Unable to locate package %s" % name, 100)
        if name in held and ver and ver != held[name]:
            err("E: Held packages were changed and -y was used without --allow-change-held-packages.", 100)
        wanted.append((name, ver))
    packages = load("packages.json", {})
    for name, ver in wanted:
        packages[name] = ver
        for src, dst in PAYLOAD.get(name, []):
            install_file(os.path.join(LIBEXEC, src), dst)
        if name == "python3-venv":
            ensurepip()
        if name == "containerd":
            services = load("services.json", {})
            services.setdefault("containerd", {"enabled": True, "active": True})
            save("services.json", services)
        if name == "kubelet":
            services = load("services.json", {})
            services.setdefault("kubelet", {"enabled": True, "active": False})
            save("services.json", services)
        print("Setting up %s (%s) ..." % (name, ver or "latest"))
    save("packages.json", packages)
    lock.close()


def apt_mark(argv):
    if not argv:
        err("apt-mark: no command", 100)
    holds = load("holds.json", {})
    packages = load("packages.json", {})
    if argv[0] == "hold":
        for p in argv[1:]:
            if p not in packages:
                err("E: Unable to locate package %s" % p, 100)
            holds[p] = packages[p]
            print("%s set on hold." % p)
    elif argv[0] == "unhold":
        for p in argv[1:]:
            holds.pop(p, None)
            print("Canceled hold on %s." % p)
    elif argv[0] == "showhold":
        for p in sorted(holds):
            print(p)
        return
    save("holds.json", holds)


# ------------------------------------------------------------------- snap
def snap(argv):
    snaps = load("snaps.json", {})
    if argv[:1] == ["install"]:
        names = [a for a in argv[1:] if not a.startswith("-")]
        for n in names:
            if "snap-fails" in FAULTS:
                err('error: cannot install "%s": Post "http://localhost/v2/snaps/%s": dial unix '
                    '/run/snapd.socket: connect: connection refused' % (n, n))
            snaps[n] = {"classic": "--classic" in argv, "held": snaps.get(n, {}).get("held", False)}
            print("%s installed" % n)
    elif argv[:1] == ["refresh"] and "--hold" in " ".join(argv):
        for n in [a for a in argv[1:] if not a.startswith("-")]:
            snaps.setdefault(n, {})["held"] = True
            print('General refreshes of "%s" held indefinitely' % n)
    elif argv[:1] in (["list"], ["info"], ["version"], ["wait"]):
        pass
    save("snaps.json", snaps)


# --------------------------------------------------------------- systemctl
def systemctl(argv):
    args = [a for a in argv if not a.startswith("-")]
    now = "--now" in argv
    quiet = "-q" in argv or "--quiet" in argv
    services = load("services.json", {})
    if not args or args[0] in ("daemon-reload", "daemon-reexec"):
        return
    cmd, units = args[0], [u[:-len(".service")] if u.endswith(".service") else u for u in args[1:]]
    for u in units:
        if u not in services and cmd not in ("is-active", "is-enabled", "status"):
            verb = {"enable": "enable unit", "disable": "disable unit"}.get(cmd, cmd)
            err("Failed to %s %s.service: Unit %s.service not found." % (verb, u, u), 5)
    rc = 0
    for u in units:
        s = services.get(u)
        if cmd in ("start", "restart", "reload-or-restart", "try-restart"):
            s["active"] = True
            s["restarts"] = s.get("restarts", 0) + 1
        elif cmd == "stop":
            s["active"] = False
        elif cmd == "enable":
            s["enabled"] = True
            if now:
                s["active"] = True
        elif cmd == "disable":
            s["enabled"] = False
            if now:
                s["active"] = False
        elif cmd == "is-active":
            ok = bool(s and s.get("active"))
            if not quiet:
                print("active" if ok else "inactive")
            rc = rc or (0 if ok else 3)
        elif cmd == "is-enabled":
            ok = bool(s and s.get("enabled"))
            if not quiet:
                print("enabled" if ok else "disabled")
            rc = rc or (0 if ok else 1)
        elif cmd in ("status", "mask", "unmask"):
            pass
    save("services.json", services)
    sys.exit(rc)


# --------------------------------------------------------------- containerd
# containerd 1.7's `containerd config default`, abridged to the keys a
# provisioner edits (containerd v1.7 pkg/cri/config/config_unix.go:
# SandboxImage "registry.k8s.io/pause:3.8", runc options SystemdCgroup false;
# section names per docs/cri/config.md, "In containerd 1.x").
CONTAINERD_DEFAULT = '''disabled_plugins = []
imports = []
oom_score = 0
plugin_dir = ""
required_plugins = []
root = "/var/lib/containerd"
state = "/run/containerd"
temp = ""
version = 2

[cgroup]
  path = ""

[grpc]
  address = "/run/containerd/containerd.sock"
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216
  uid = 0

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    device_ownership_from_security_context = false
    disable_apparmor = false
    disable_cgroup = false
    enable_selinux = false
    enable_unprivileged_icmp = false
    enable_unprivileged_ports = false
    max_concurrent_downloads = 3
    max_container_log_line_size = 16384
    restrict_oom_score_adj = false
    sandbox_image = "registry.k8s.io/pause:3.8"
    selinux_category_range = 1024
    stats_collect_period = 10
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      disable_snapshot_annotations = true
      snapshotter = "overlayfs"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          base_runtime_spec = ""
          privileged_without_host_devices = false
          runtime_engine = ""
          runtime_root = ""
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""
            CriuImagePath = ""
            CriuPath = ""
            CriuWorkPath = ""
            IoGid = 0
            IoUid = 0
            NoNewKeyring = false
            NoPivotRoot = false
            Root = ""
            ShimCgroup = ""
            SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""

  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = ""
    upperdir_label = false

[timeouts]
  "io.containerd.timeout.bolt.open" = "0s"
  "io.containerd.timeout.shim.cleanup" = "5s"
  "io.containerd.timeout.shim.load" = "5s"
  "io.containerd.timeout.shim.shutdown" = "3s"
  "io.containerd.timeout.task.state" = "2s"
'''


def containerd(argv):
    if argv[:2] == ["config", "default"]:
        sys.stdout.write(CONTAINERD_DEFAULT)
    elif argv[:1] in (["--version"], ["-v"]):
        print("containerd github.com/containerd/containerd 1.7.24")


def kubelet(argv):
    if argv[:1] == ["--version"]:
        minor = (load("apt-sources.json", []) or [{"minor": "1.31"}])[0]["minor"]
        print("Kubernetes v%s.0" % minor)


# --------------------------------------------------------- modprobe, sysctl
def modprobe(argv):
    mods = load("modules.json", [])
    for m in [a for a in argv if not a.startswith("-")]:
        if m not in mods:
            mods.append(m)
    save("modules.json", mods)


def sysctl(argv):
    if "--system" not in argv:
        values = load("sysctl.json", {})
        for a in argv:
            if "=" in a and not a.startswith("-"):
                k, _, v = a.partition("=")
                values[k.strip()] = v.strip()
        save("sysctl.json", values)
        return
    path = "/etc/sysctl.d/k8s.conf"
    if not os.path.exists(path):
        err("sysctl --system: %s does not exist (the user data's write_files makes it)" % path, 1)
    mods = load("modules.json", [])
    values, rc = load("sysctl.json", {}), 0
    for f in sorted(os.listdir("/etc/sysctl.d")):
        if not f.endswith(".conf"):
            continue
        print("* Applying /etc/sysctl.d/%s ..." % f)
        for line in open(os.path.join("/etc/sysctl.d", f)):
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            k, _, v = line.partition("=")
            k, v = k.strip().lstrip("-"), v.strip()
            if k.startswith("net.bridge.") and "br_netfilter" not in mods:
                sys.stderr.write("sysctl: cannot stat /proc/sys/%s: No such file or directory\n" % k.replace(".", "/"))
                rc = 255
                continue
            values[k] = v
            print("%s = %s" % (k, v))
    save("sysctl.json", values)
    sys.exit(rc)


def swapoff(argv):
    s = load("swap.json", {})
    s["off"] = True
    save("swap.json", s)


# ------------------------------------------------------------------- curl
def curl(argv):
    urls = [a for a in argv if re.match(r"https?://", a)]
    if urls and all(u.startswith("https://pkgs.k8s.io/") for u in urls):
        out = None
        if "-o" in argv:
            out = argv[argv.index("-o") + 1]
        for u in urls:
            if not re.match(r"https://pkgs\.k8s\.io/core:/stable:/v\d+\.\d+/deb/Release\.key$", u):
                err("curl: (22) The requested URL returned error: 404", 22)
            data = open(os.path.join(LIBEXEC, "Release.key"), "rb").read()
            if out:
                open(out, "wb").write(data)
            else:
                sys.stdout.buffer.write(data)
        return
    for u in urls:
        host = re.match(r"https?://([^/:]+)", u).group(1)
        if host not in ("169.254.169.254", "127.0.0.1", "localhost"):
            # No route out of the box: say so as curl would, quickly.
            err("curl: (7) Failed to connect to %s port 443: Network is unreachable" % host, 7)
    sys.stdout.flush()
    os.execv(os.path.join(LIBEXEC, "curl"), ["curl"] + argv)


def placeholder_kubeadm(argv):
    """Only when tests/boot/kubeadm does not exist: records, says ok."""
    cfg = None
    if "--config" in argv:
        cfg = argv[argv.index("--config") + 1]
    node = ""
    if cfg and os.path.exists(cfg):
        m = re.search(r'^\s*name:\s*"?([^"\s]+)"?', open(cfg).read(), re.M)
        node = m.group(1) if m else ""
    action = argv[0] if argv else ""
    save("kubeadm-verdict.json", {"ok": True, "placeholder": True, "action": action,
                                  "node": node, "violations": []})
    cluster = os.environ.get("SCOPECTL_BOOT_CLUSTER")
    if cluster and node and action in ("init", "join"):
        os.makedirs(os.path.join(cluster, "nodes"), exist_ok=True)
        with open(os.path.join(cluster, "nodes", node + ".json"), "w") as f:
            json.dump({"name": node, "action": action, "placeholder": True}, f)


TOOLS = {
    "apt-get": apt_get, "apt-mark": apt_mark, "snap": snap, "systemctl": systemctl,
    "containerd": containerd, "kubelet": kubelet, "kubectl": lambda a: None,
    "modprobe": modprobe, "sysctl": sysctl, "swapoff": swapoff, "curl": curl,
    "cni-plugin": lambda a: None, "kubeadm-placeholder": placeholder_kubeadm,
}


def main():
    tool, argv = sys.argv[1], sys.argv[2:]
    record(tool, argv)
    TOOLS[tool](argv)


if __name__ == "__main__":
    main()
