"""A kubeadm stand-in for the boot harness: judges `kubeadm init|join --config F` by the rules in
kubeadm_rules.py against the box's files, and leaves behind what the scopectl scripts read.

Environment:
  SCOPECTL_BOOT_ROOT           filesystem root prefix (default "/"; tests use a temp dir)
  SCOPECTL_BOOT_STATE          box state dir: packages.json in, kubeadm-verdict.json out
  SCOPECTL_BOOT_CLUSTER        shared dir standing in for the API server behind the balancer
  SCOPECTL_BOOT_TIME_SCALE     multiplies kubeadm's timeouts (default 1.0)
  SCOPECTL_BOOT_NEWEST_KUBEADM what a package installed without a version resolves to (default 1.35.0)
  SCOPECTL_BOOT_ADVERTISE_ADDRESS  this box's address when the config names none (else `hostname -I`)

Exit status is kubeadm's (0 unless real kubeadm would fail), so the boot goes on as on EC2;
scopectl's own rules (scopectl/...) are reported in the verdict and make its "ok" false.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import subprocess
import sys
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubeadm_rules as R  # noqa: E402

PKI = "/etc/kubernetes/pki"
CAS = ("ca", "front-proxy-ca", "etcd/ca")
DEFAULT_DISCOVERY_TIMEOUT = 300.0   # v1beta4 defaults: timeouts.discovery 5m
DISCOVERY_RETRY_INTERVAL = 5.0      # constants.DiscoveryRetryInterval


class KubeadmFailed(Exception):
    pass


class FS:
    """The box's filesystem under SCOPECTL_BOOT_ROOT; paths are given as on the box."""

    def __init__(self, root: str):
        self.root = root

    def p(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def exists(self, path):
        return os.path.exists(self.p(path))

    def isdir(self, path):
        return os.path.isdir(self.p(path))

    def listdir(self, path):
        return os.listdir(self.p(path))

    def mode(self, path) -> int:
        return os.stat(self.p(path)).st_mode & 0o7777

    def read(self, path) -> bytes | None:
        try:
            with open(self.p(path), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, path, data, mode=0o600):
        full = self.p(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(full, mode)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def parse_duration(s) -> float:
    """Go time.ParseDuration, enough for '5m0s', '30s', '1h'."""
    total = 0.0
    for n, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", str(s)):
        total += float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def packages() -> dict:
    state = os.environ.get("SCOPECTL_BOOT_STATE")
    try:
        with open(os.path.join(state, "packages.json")) as f:
            return json.load(f)
    except (OSError, TypeError, ValueError):
        return {}


def package_version(name: str) -> str:
    """packages.json's version as apt-get was asked; "" or absent = floating = the newest."""
    v = packages().get(name) or os.environ.get("SCOPECTL_BOOT_NEWEST_KUBEADM", "1.35.0")
    return R.deb_to_semver(v)


def advertise_address(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("SCOPECTL_BOOT_ADVERTISE_ADDRESS"):
        return os.environ["SCOPECTL_BOOT_ADVERTISE_ADDRESS"]
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
        for a in out:
            if R.parse_ip(a) and R.parse_ip(a).version == 4 and not a.startswith("127."):
                return a
    except (OSError, subprocess.SubprocessError):
        pass
    raise KubeadmFailed("unable to select an IP from default routes.")


def load_docs(fs: FS, path: str) -> list[dict]:
    raw = open(path).read() if os.path.isabs(path) and os.path.exists(path) else (fs.read(path) or b"").decode()
    if not raw:
        raise KubeadmFailed(f'unable to read config from "{path}" : open {path}: no such file or directory')
    return [d for d in yaml.safe_load_all(raw) if isinstance(d, dict)]


def kind(docs, k) -> dict:
    for d in docs:
        if d.get("kind") == k and str(d.get("apiVersion", "")).startswith(R.KUBEADM_GROUP):
            return d
    return {}


def load_pki(fs: FS, certs_dir: str = PKI) -> dict:
    pki = {}
    for base in list(CAS) + [b for _, b, _ in R.LEAVES]:
        data = fs.read(f"{certs_dir}/{base}.crt")
        try:
            pki[base + ".crt"] = x509.load_pem_x509_certificate(data) if data else None
        except ValueError:
            pki[base + ".crt"] = None
        pki[base + ".key"] = fs.exists(f"{certs_dir}/{base}.key")
    pki["sa.key"] = fs.exists(f"{certs_dir}/sa.key")
    return pki


def ignore_set(args_ignore: list[str], node_reg: dict) -> set[str]:
    s = {x.strip() for a in args_ignore for x in a.split(",") if x.strip()}
    return s | set(node_reg.get("ignorePreflightErrors") or [])


# ---------------------------------------------------------------------------
# What kubeadm leaves behind
# ---------------------------------------------------------------------------

def issue(fs: FS, base: str, ca_base: str | None, cn: str, names: list[str], server: bool, client: bool):
    """Write <base>.crt/.key as kubeadm would (ECDSA P-256; kubeadm's default is RSA 2048)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    if ca_base:
        ca_cert = x509.load_pem_x509_certificate(fs.read(f"{PKI}/{ca_base}.crt"))
        ca_key = serialization.load_pem_private_key(fs.read(f"{PKI}/{ca_base}.key"), None)
        issuer = ca_cert.subject
    else:
        ca_key, issuer = key, subject
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=ca_base is None, path_length=None), critical=True))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if names:
        sans = [x509.IPAddress(R.parse_ip(n)) if R.parse_ip(n) else x509.DNSName(n) for n in dict.fromkeys(names)]
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    fs.write(f"{PKI}/{base}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    fs.write(f"{PKI}/{base}.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))


def fill_missing_pki(fs: FS, names: dict[str, list[str]]):
    """certs phase / CreatePKIAssets: what is missing is generated (CAs first); what exists is kept."""
    for ca in CAS:
        if not fs.exists(f"{PKI}/{ca}.crt"):
            print(f'[certs] Generating "{ca}" certificate and key')
            issue(fs, ca, None, {"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd/ca": "etcd-ca"}[ca], [], False, False)
    for name, base, ca in R.LEAVES:
        if fs.exists(f"{PKI}/{base}.crt"):
            print(f'[certs] Using the existing "{base}" certificate and key')
            continue
        if not fs.exists(f"{PKI}/{ca}.key"):
            raise KubeadmFailed(f'error creating PKI assets: could not load expected certificate "{name}" or validate '
                                f'the existence of key "{ca}" for it')
        print(f'[certs] Generating "{base}" certificate and key')
        issue(fs, base, ca, name, names.get(name, []), name in ("apiserver", "etcd-server", "etcd-peer"),
              name not in ("apiserver",))
    if not fs.exists(f"{PKI}/sa.key"):
        key = ec.generate_private_key(ec.SECP256R1())
        fs.write(f"{PKI}/sa.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        fs.write(f"{PKI}/sa.pub", key.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)


def kubeconfig(server: str, ca_pem: bytes, user: str) -> str:
    import base64
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": f"{user}@kubernetes",
        "clusters": [{"name": "kubernetes", "cluster": {"server": f"https://{server}",
                                                        "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "contexts": [{"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}],
        "users": [{"name": user, "user": {"client-certificate-data": "c3RhbmQtaW4=", "client-key-data": "c3RhbmQtaW4="}}],
    }, sort_keys=False)


BOOTSTRAP_KUBELET_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"   # constants.KubeletBootstrapKubeConfigFileName


def bootstrap_kubeconfig(server: str, ca_pem: bytes, token: str) -> str:
    """The TLS bootstrap kubeconfig kubeadm join hands the kubelet: the bootstrap token as the credential
    (discovery's TLSBootstrapCfg, user "tls-bootstrap-token-user")."""
    import base64
    user = "tls-bootstrap-token-user"
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": f"{user}@kubernetes",
        "clusters": [{"name": "kubernetes", "cluster": {"server": f"https://{server}",
                                                        "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "contexts": [{"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}],
        "users": [{"name": user, "user": {"token": token}}],
    }, sort_keys=False)


def write_control_plane(fs: FS, node: str, ip: str, cluster_cfg: dict, members: list[dict], existing: bool,
                        version: str, endpoint: str):
    """control-plane / etcd phases: static Pod manifests (etcd's '    - --name=<node>' as kubeadm writes it)."""
    data_dir = ((cluster_cfg.get("etcd") or {}).get("local") or {}).get("dataDir") or "/var/lib/etcd"
    initial = ",".join(f"{m['name']}={m['peerURL']}" for m in members)
    etcd = f"""apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://{ip}:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://{ip}:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir={data_dir}
    - --initial-advertise-peer-urls=https://{ip}:2380
    - --initial-cluster={initial}
""" + ("    - --initial-cluster-state=existing\n" if existing else "") + f"""    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://{ip}:2379
    - --listen-peer-urls=https://{ip}:2380
    - --name={node}
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.6.5-0
    name: etcd
  hostNetwork: true
"""
    fs.write(f"{R.MANIFESTS}/etcd.yaml", etcd)
    for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        # abridged: the command carries only the extraArgs (last value of a repeated name), the volumes are kubeadm's
        # own plus the extraVolumes (R.control_plane_volumes), in name order
        args = R.component_args(cluster_cfg, comp)
        vols = sorted(R.control_plane_volumes(fs, cluster_cfg, comp).values(), key=lambda v: v["name"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": comp, "namespace": "kube-system"},
               "spec": {"containers": [{"command": [comp] + [f"--{k}={v}" for k, v in sorted(args.items())],
                                        "image": f"registry.k8s.io/{comp}:{version}", "name": comp,
                                        "volumeMounts": [dict({"mountPath": v["mountPath"], "name": v["name"]},
                                                              **({"readOnly": True} if v["readOnly"] else {})) for v in vols]}],
                        "hostNetwork": True,
                        "volumes": [{"hostPath": dict({"path": v["hostPath"]}, **({"type": v["pathType"]} if v["pathType"] else {})),
                                     "name": v["name"]} for v in vols]}}
        fs.write(f"{R.MANIFESTS}/{comp}.yaml", yaml.safe_dump(pod, sort_keys=False))
    ca = fs.read(f"{PKI}/ca.crt")
    for f, user in (("admin.conf", "kubernetes-admin"), ("super-admin.conf", "kubernetes-super-admin"),
                    ("controller-manager.conf", "system:kube-controller-manager"), ("scheduler.conf", "system:kube-scheduler")):
        fs.write(f"/etc/kubernetes/{f}", kubeconfig(endpoint, ca, user))


def encryption_fingerprint(fs: FS, cc: dict) -> str | None:
    """The fingerprint of the Secrets providers this node's kube-apiserver loads (None: no or no valid config)."""
    enc = R.component_args(cc, "kube-apiserver").get("encryption-provider-config")
    r = R.container_path(R.control_plane_volumes(fs, cc, "kube-apiserver"), enc) if enc else None
    data = fs.read(r[1]) if r and not fs.isdir(r[1]) else None
    cfg, _ = R.parse_encryption_config(data or b"", enc or "")
    return R.encryption_fingerprint(cfg) if cfg else None


def wait_control_plane(run: "Run", fs: FS, cc: dict, ip: str, kubeadm_v: str, cluster_fp: str | None, join: bool):
    """wait-control-plane: whether the kubelet starts each static Pod (R.check_static_pod_volumes) and the
    kube-apiserver starts with the files its extraArgs name (R.check_apiserver_files). kubeadm init always waits for
    the kube-apiserver; the other components, and a control-plane join's, only with WaitForAllControlPlaneComponents
    (R.waits_for_all_components: always from v1.34). What kubeadm does not wait for is recorded, not fatal."""
    waits_all = R.waits_for_all_components(kubeadm_v, cc.get("featureGates"))
    fatal, unseen = [], []
    for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        vs = R.check_static_pod_volumes(fs, cc, comp)
        if comp == "kube-apiserver" and not any(v.severity == "error" for v in vs):
            vs += R.check_apiserver_files(fs, cc, cluster_fp)
        vs = R.control_plane_failures(vs, comp, ip)
        (fatal if waits_all or (comp == "kube-apiserver" and not join) else unseen).extend(vs)
    run.add(unseen, "wait-control-plane", fatal=False)
    run.add(fatal, "wait-control-plane")


# ---------------------------------------------------------------------------
# Shared cluster state
# ---------------------------------------------------------------------------

def cluster_dir() -> str:
    d = os.environ.get("SCOPECTL_BOOT_CLUSTER") or os.path.join(os.environ.get("SCOPECTL_BOOT_STATE", "/tmp"), "cluster")
    os.makedirs(os.path.join(d, "nodes"), exist_ok=True)
    return d


@contextlib.contextmanager
def cluster_lock():
    with open(os.path.join(cluster_dir(), ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, obj):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)   # atomic: readers never see half a file


def read_nodes() -> dict:
    d = os.path.join(cluster_dir(), "nodes")
    return {n[:-5]: read_json(os.path.join(d, n)) or {} for n in os.listdir(d) if n.endswith(".json")}


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

class Run:
    def __init__(self, command: str):
        self.command = command
        self.violations: list[R.Violation] = []
        self.node: str | None = None   # the Node name, for the runner's report
        self.fs = FS(os.environ.get("SCOPECTL_BOOT_ROOT", "/"))

    def add(self, vs: list[R.Violation], phase: str | None = None, preflight: bool = False, first: bool = False,
            fatal: bool = True):
        """Record all; raise as kubeadm stops: at the first phase with an error (with first=True, printing only
        the first error, as kubeadm returns from a loop; the verdict keeps them all). fatal=False: errors that real
        kubeadm would not notice (it does not wait for that component): recorded, printed, the verdict is not ok,
        but kubeadm goes on."""
        self.violations += vs
        for v in vs:
            if v.severity == "warning":
                print(f"W [{v.rule}] {v.message}" if not v.check else f"\t[WARNING {v.check}]: {v.message}", file=sys.stderr)
        errs = [v for v in vs if v.severity == "error" and not v.rule.startswith("scopectl/")]
        for v in vs:
            if v.severity == "error" and v.rule.startswith("scopectl/"):
                print(f"[scopectl] {v.rule}: {v.message}", file=sys.stderr)
        if not fatal:
            for v in errs:
                print(f"[not noticed by kubeadm] {v.rule}: {v.message}", file=sys.stderr)
            return
        if errs:
            # preflight prints its own block; other errors come back as one aggregate, as field.ErrorList does
            msg = R.preflight_error_text(errs) if preflight else R.aggregate([v.message for v in errs[:1 if first else None]])
            raise KubeadmFailed((f"error execution phase {phase}: " if phase and not msg.startswith("error execution") else "") + msg)

    def verdict(self, kubeadm_ok: bool):
        state = os.environ.get("SCOPECTL_BOOT_STATE")
        errors = [v for v in self.violations if v.severity == "error"]
        errors.sort(key=lambda v: v.rule.startswith("scopectl/"))   # kubeadm's own first: the runner reports [0]
        doc = {"ok": kubeadm_ok and not errors, "kubeadm_ok": kubeadm_ok, "command": self.command, "node": self.node,
               "violations": [v.to_json() for v in errors],
               "warnings": [v.to_json() for v in self.violations if v.severity == "warning"]}
        if state:
            os.makedirs(state, exist_ok=True)
            write_json(os.path.join(state, "kubeadm-verdict.json"), doc)


def init(run: Run, config: str, ignore: list[str], skip: list[str]):
    fs = run.fs
    docs = load_docs(fs, config)
    ic, cc = kind(docs, "InitConfiguration"), kind(docs, "ClusterConfiguration")
    requested = str(cc.get("kubernetesVersion") or "stable-1")   # v1beta4 default: constants.DefaultKubernetesVersion label
    run.add(R.scopectl_pinned_version(requested, packages()))
    run.add(R.check_config_documents(docs))
    nr = ic.get("nodeRegistration") or {}
    node = run.node = nr.get("name") or os.uname().nodename
    skip = set(skip) | set(ic.get("skipPhases") or [])
    kubeadm_v, kubelet_v = package_version("kubeadm"), package_version("kubelet")

    # Loading the config: validation, then SetInitDynamicDefaults -> NormalizeKubernetesVersion.
    run.add(R.check_node_name(node) + R.check_init_bootstrap_tokens(ic.get("bootstrapTokens") or [])
            + R.check_control_plane_endpoint(cc.get("controlPlaneEndpoint", "")))
    k8s_v, vs = R.resolve_kubernetes_version(requested, kubeadm_v)
    run.add(vs)
    run.add(R.check_control_plane_version(k8s_v, kubeadm_v))
    print(f"[init] Using Kubernetes version: {k8s_v}")

    ip = advertise_address((ic.get("localAPIEndpoint") or {}).get("advertiseAddress"))
    etcd_local = (cc.get("etcd") or {}).get("local") or {}
    data_dir = etcd_local.get("dataDir") or "/var/lib/etcd"
    if "preflight" not in skip:
        print("[preflight] Running pre-flight checks")
        pf = R.preflight_init_node(fs, data_dir) + R.check_kubelet_version_init(kubelet_v, k8s_v, kubeadm_v)
        run.add(R.apply_ignore(pf, ignore_set(ignore, nr)), "preflight", preflight=True)

    net = cc.get("networking") or {}
    svc, domain = net.get("serviceSubnet") or "10.96.0.0/12", net.get("dnsDomain") or "cluster.local"
    endpoint = cc.get("controlPlaneEndpoint") or f"{ip}:6443"
    if ":" not in endpoint.rsplit("]", 1)[-1]:
        endpoint += ":6443"
    names = {"apiserver": R.apiserver_alt_names(node, ip, svc, domain, endpoint, (cc.get("apiServer") or {}).get("certSANs") or []),
             "etcd-server": R.etcd_alt_names(node, ip, etcd_local.get("serverCertSANs") or []),
             "etcd-peer": R.etcd_alt_names(node, ip, etcd_local.get("peerCertSANs") or [])}
    if "certs" not in skip:
        print(f'[certs] Using certificateDir folder "{PKI}"')
        run.add(R.check_init_certs(load_pki(fs)), first=True)
        fill_missing_pki(fs, names)

    with cluster_lock():
        cpath = os.path.join(cluster_dir(), "cluster.json")
        old = read_json(cpath) or {}
        members = [m for m in old.get("etcdMembers", []) if m.get("name") != node]
        members.append({"name": node, "peerURL": f"https://{ip}:2380"})
        write_control_plane(fs, node, ip, cc, members, False, k8s_v, endpoint)
        fs.write("/etc/kubernetes/kubelet.conf", kubeconfig(endpoint, fs.read(f"{PKI}/ca.crt"), f"system:node:{node}"))
        wait_control_plane(run, fs, cc, ip, kubeadm_v, None, join=False)
        tokens = [{"token": str(t.get("token")), "ttl": t.get("ttl", "24h0m0s"),
                   "groups": t.get("groups") or [R.NODE_BOOTSTRAP_GROUP],
                   "usages": t.get("usages") or ["signing", "authentication"]} for t in ic.get("bootstrapTokens") or []]
        write_json(cpath, {
            "controlPlaneEndpoint": endpoint, "clusterName": cc.get("clusterName", "kubernetes"),
            "kubernetesVersion": k8s_v, "ca": fs.read(f"{PKI}/ca.crt").decode(),
            "tokens": tokens or old.get("tokens", []), "networking": net, "dnsDomain": domain,
            "clusterConfiguration": dict(cc, kubernetesVersion=k8s_v, controlPlaneEndpoint=endpoint),
            "encryptionFingerprint": encryption_fingerprint(fs, cc),
            "etcdMembers": members})
        write_json(os.path.join(cluster_dir(), "nodes", f"{node}.json"),
                   {"name": node, "role": "control-plane", "address": ip, "kubeletVersion": kubelet_v})
    print("Your Kubernetes control-plane has initialized successfully!")


def join(run: Run, config: str, ignore: list[str]):
    fs = run.fs
    docs = load_docs(fs, config)
    run.add(R.scopectl_pinned_version(None, packages()))
    run.add(R.check_config_documents(docs))
    jc = kind(docs, "JoinConfiguration")
    if not jc:
        raise KubeadmFailed("no JoinConfiguration found in the supplied config")
    nr = jc.get("nodeRegistration") or {}
    node = run.node = nr.get("name") or os.uname().nodename
    cp = jc.get("controlPlane")
    cp = {} if cp is not None and not isinstance(cp, dict) else cp   # 'controlPlane: {}' is non-nil
    ca_path = jc.get("caCertPath") or f"{PKI}/ca.crt"
    run.add(R.check_join_discovery(jc) + R.check_node_name(node))
    kubeadm_v, kubelet_v = package_version("kubeadm"), package_version("kubelet")
    ip = advertise_address(((cp or {}).get("localAPIEndpoint") or {}).get("advertiseAddress"))
    ign = ignore_set(ignore, nr)

    print("[preflight] Running pre-flight checks")
    run.add(R.apply_ignore(R.preflight_join_node(fs, cp is not None, ca_path), ign), "preflight", preflight=True)

    # Discovery (InitCfg -> TLSBootstrapCfg), still inside the preflight phase.
    bt = (jc.get("discovery") or {}).get("bootstrapToken") or {}
    endpoint, token, hashes = bt.get("apiServerEndpoint", ""), str(bt.get("token", "")), bt.get("caCertHashes") or []
    scale = float(os.environ.get("SCOPECTL_BOOT_TIME_SCALE", "1.0"))
    timeout = parse_duration((jc.get("timeouts") or {}).get("discovery", "")) or DEFAULT_DISCOVERY_TIMEOUT
    deadline = time.monotonic() + timeout * scale
    while True:
        cluster = read_json(os.path.join(cluster_dir(), "cluster.json"))
        ca = x509.load_pem_x509_certificate(cluster["ca"].encode()) if cluster and cluster.get("ca") else None
        vs = R.check_discovery(cluster, endpoint, token, hashes, bool(bt.get("unsafeSkipCAVerification")), ca)
        # getClusterInfo keeps polling while the API does not answer or the JWS is not there yet.
        polling = bool(vs) and (vs[0].rule == "kubeadm/discovery-unreachable" or "could not find a JWS" in vs[0].message)
        if not vs or not polling or time.monotonic() >= deadline:
            break
        time.sleep(max(0.02, min(DISCOVERY_RETRY_INTERVAL * scale, deadline - time.monotonic())))
    run.add(vs, "preflight")
    cluster_cfg = cluster.get("clusterConfiguration") or {}
    cp_version = cluster.get("kubernetesVersion", "")

    if cp is not None:
        print("[preflight] Running pre-flight checks before initializing the new control plane instance")
        pki = load_pki(fs)
        cp_ready = R.check_control_plane_endpoint_set(cluster) or R.check_shared_certificates(pki)
        run.add(R.not_ready_to_join_control_plane(cp_ready), "preflight")
        data_dir = ((cluster_cfg.get("etcd") or {}).get("local") or {}).get("dataDir") or "/var/lib/etcd"
        # KubernetesVersionCheck (a warning) runs here with the cluster's version; the minimum-version error
        # is init's NormalizeKubernetesVersion and is not applied to a join.
        pf = R.preflight_init_node(fs, data_dir) + [v for v in R.check_control_plane_version(cp_version, kubeadm_v)
                                                    if v.severity == "warning"]
        run.add(R.apply_ignore(pf, ign), "preflight", preflight=True)

        net = cluster.get("networking") or {}
        etcd_local = (cluster_cfg.get("etcd") or {}).get("local") or {}
        names = {"apiserver": R.apiserver_alt_names(node, ip, net.get("serviceSubnet") or "10.96.0.0/12",
                                                    cluster.get("dnsDomain") or "cluster.local", cluster["controlPlaneEndpoint"],
                                                    (cluster_cfg.get("apiServer") or {}).get("certSANs") or []),
                 "etcd-server": R.etcd_alt_names(node, ip, etcd_local.get("serverCertSANs") or []),
                 "etcd-peer": R.etcd_alt_names(node, ip, etcd_local.get("peerCertSANs") or [])}
        print(f'[certs] Using certificateDir folder "{PKI}"')
        run.add(R.check_join_certs(pki, names), "control-plane-prepare/certs", first=True)
        fill_missing_pki(fs, names)

    print("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"")
    with cluster_lock():
        # kubelet-start writes the TLS bootstrap kubeconfig, the bootstrap token as its user's credential
        # (cmd/phases/join/kubelet.go:184, runKubeletStartJoinPhase), and removes it when the phase returns, joined
        # or not (:148-150, a deferred os.Remove "so the credential used for TLS bootstrap is removed from disk";
        # runKubeletWaitBootstrapPhase defers the same): what stays is the kubelet's kubelet.conf, a client
        # certificate and no token. The join token scan (box_init.join_token_scan) relies on it.
        fs.write(BOOTSTRAP_KUBELET_CONF, bootstrap_kubeconfig(endpoint, cluster["ca"].encode(), token))
        try:
            run.add(R.check_existing_node(read_nodes(), node, ip), "kubelet-start")
            run.add(R.scopectl_kubelet_skew(kubelet_v, cp_version))
            tok = next((t for t in cluster.get("tokens", []) if t.get("token") == token), {})
            if R.NODE_BOOTSTRAP_GROUP not in (tok.get("groups") or []) or "authentication" not in (tok.get("usages") or []):
                run.add([R.Violation("kubeadm/token-rbac", R.SRC + "phases/bootstraptoken/node/tlsbootstrap.go:AllowBootstrapTokensToPostCSRs",
                                     "error execution phase kubelet-start: timed out waiting for the condition (modelled: the token is "
                                     f'not in group "{R.NODE_BOOTSTRAP_GROUP}" with usage authentication, so the kubelet\'s CSR is Forbidden)')])
            if not fs.exists(ca_path):   # kubelet-start writes the CA from cluster-info when absent
                fs.write(ca_path, cluster["ca"], 0o644)
            fs.write("/etc/kubernetes/kubelet.conf", kubeconfig(cluster["controlPlaneEndpoint"], cluster["ca"].encode(), f"system:node:{node}"))
            fs.write("/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n", 0o644)
            write_json(os.path.join(cluster_dir(), "nodes", f"{node}.json"),
                       {"name": node, "role": "control-plane" if cp is not None else "worker", "address": ip, "kubeletVersion": kubelet_v})
        finally:
            with contextlib.suppress(OSError):
                os.remove(fs.p(BOOTSTRAP_KUBELET_CONF))
        if cp is not None:   # control-plane-join/etcd: MemberAdd, then the manifests with the full member list
            cpath = os.path.join(cluster_dir(), "cluster.json")
            cur = read_json(cpath) or cluster
            members = [m for m in cur.get("etcdMembers", []) if m.get("name") != node]
            members.append({"name": node, "peerURL": f"https://{ip}:2380"})
            cur["etcdMembers"] = members
            write_json(cpath, cur)
            write_control_plane(fs, node, ip, cluster_cfg, members, True, cp_version, cluster["controlPlaneEndpoint"])
            wait_control_plane(run, fs, cluster_cfg, ip, kubeadm_v, cluster.get("encryptionFingerprint"), join=True)
    print("This node has joined the cluster" + (" and a new control plane instance was created" if cp is not None else ""))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: kubeadm init|join --config F [--ignore-preflight-errors=A,B] [--skip-phases=...] | version [-o short]")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "version":
        v = package_version("kubeadm")
        short = "-o=short" in rest or ("-o" in rest and rest[rest.index("-o") + 1:rest.index("-o") + 2] == ["short"])
        maj, mn = R.mm(v)
        print(v if short else f'kubeadm version: &version.Info{{Major:"{maj}", Minor:"{mn}", GitVersion:"{v}", '
                              f'GitTreeState:"clean", GoVersion:"go1.24", Compiler:"gc", Platform:"linux/amd64"}}')
        return 0
    config, ignore, skip = None, [], []
    it = iter(rest)
    for a in it:
        key, eq, val = a.partition("=")
        if key in ("--config", "--ignore-preflight-errors", "--skip-phases") and not eq:
            val = next(it, "")
        if key == "--config":
            config = val
        elif key == "--ignore-preflight-errors":
            ignore.append(val)
        elif key == "--skip-phases":
            skip += [s for s in val.split(",") if s]
    run = Run(cmd)
    try:
        if cmd not in ("init", "join"):
            raise KubeadmFailed(f'unknown command "{cmd}" for "kubeadm"')
        if not config:
            raise KubeadmFailed("the stand-in needs --config")
        (init(run, config, ignore, skip) if cmd == "init" else join(run, config, ignore))
    except KubeadmFailed as e:
        print(str(e).rstrip("\n"), file=sys.stderr)
        print("To see the stack trace of this error execute with --v=5 or higher", file=sys.stderr)
        if not any(v.severity == "error" for v in run.violations):
            run.violations.append(R.Violation("kubeadm/failed", "kubeadm", str(e)))
        run.verdict(False)
        return 1
    run.verdict(True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
