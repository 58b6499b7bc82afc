"""What real kubeadm refuses (and accepts), rule by rule, plus the stand-in end to end.

Run: /work/main/.venv/bin/python -m unittest discover -s tests/boot -p 'test_*.py'
Sources: kubernetes/kubernetes cmd/kubeadm/app/ as `path:LINE (Function)`; line numbers refer to the stored copy
in the search index (read_file), one commit per file, listed in kubeadm_rules.STORED (mixed commits, ~v1.12-v1.34).
"""

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kubeadm_rules as R  # noqa: E402
import kubeadm_standin as S  # noqa: E402

NODE = "ip-10-0-1-5.ec2.internal"
IP = "10.0.1.5"
LB = "scope-api-123.us-east-1.elb.amazonaws.com"


def make_ca(cn="kubernetes"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert, key


def make_leaf(ca, cn, names):
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(R.parse_ip(n)) if R.parse_ip(n) else x509.DNSName(n) for n in names]), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def load(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


def pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


APISERVER_NAMES = R.apiserver_alt_names(NODE, IP, "10.96.0.0/12", "cluster.local", f"{LB}:443", [])
ETCD_NAMES = R.etcd_alt_names(NODE, IP, [])


class Box:
    """A temp filesystem root with a full PKI as scopectl-state fetch-pki lays it down."""

    def __init__(self, root, apiserver_names=None, etcd_server_names=None, foreign=()):
        self.fs = S.FS(root)
        cas = {b: make_ca(b) for b in ("ca", "front-proxy-ca", "etcd/ca")}
        other = make_ca("kubernetes")   # same name, other key: 'signed by another CA'
        for b, (c, k) in cas.items():
            self.fs.write(f"/etc/kubernetes/pki/{b}.crt", pem(c))
            self.fs.write(f"/etc/kubernetes/pki/{b}.key", pem(k))
        self.ca = cas["ca"][0]
        names = {"apiserver": apiserver_names or APISERVER_NAMES, "etcd/server": etcd_server_names or ETCD_NAMES,
                 "etcd/peer": ETCD_NAMES}
        for _, base, ca in R.LEAVES:
            c, k = make_leaf(other if base in foreign else cas[ca], base, names.get(base, []))
            self.fs.write(f"/etc/kubernetes/pki/{base}.crt", pem(c))
            self.fs.write(f"/etc/kubernetes/pki/{base}.key", pem(k))
        self.fs.write("/etc/kubernetes/pki/sa.key", "x")
        self.fs.write("/etc/kubernetes/pki/sa.pub", "x")

    def pki(self):
        return S.load_pki(self.fs)


class PreflightJoin(unittest.TestCase):
    def test_worker_with_ca_crt_refused(self):
        """preflight/checks.go:1009-1010 (JoinNodeChecks): 'if cfg.ControlPlane == nil' FileAvailableCheck{Path: cfg.CACertPath};
        preflight/checks.go:265 (FileAvailableCheck.Check) '%s already exists'; preflight/checks.go:257
        (FileAvailableCheck.Name) 'FileAvailable-' + path with / -> -."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            fs.write("/etc/kubernetes/pki/ca.crt", "x")
            vs = R.preflight_join_node(fs, control_plane=False)
            self.assertEqual([v.check for v in vs], ["FileAvailable--etc-kubernetes-pki-ca.crt"])
            self.assertEqual(R.preflight_error_text(vs).splitlines()[1],
                             "\t[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists")
            self.assertEqual(R.preflight_join_node(fs, control_plane=True), [])  # a control plane may have it

    def test_kubelet_conf_refused_and_clean_box_accepted(self):
        """preflight/checks.go:1005-1006 (JoinNodeChecks): FileAvailable on kubelet.conf and bootstrap-kubelet.conf."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            self.assertEqual(R.preflight_join_node(fs, control_plane=False), [])
            fs.write("/etc/kubernetes/kubelet.conf", "x")
            self.assertEqual([v.check for v in R.preflight_join_node(fs, False)], ["FileAvailable--etc-kubernetes-kubelet.conf"])

    def test_etcd_data_dir_not_empty_and_ignored(self):
        """preflight/checks.go:971 (InitNodeChecks): DirAvailableCheck{Path: cfg.Etcd.Local.DataDir};
        preflight/checks.go:240 (DirAvailableCheck.Check) '%s is not empty'; preflight/checks.go:1114 (RunChecks) /
        :1135 (setHasItemOrAll): an ignored check (case-insensitive) is downgraded to a warning."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            fs.write("/var/lib/etcd/data/member/snap/db", "x")
            vs = R.preflight_init_node(fs, "/var/lib/etcd/data")
            self.assertEqual([(v.check, v.message) for v in vs],
                             [("DirAvailable--var-lib-etcd-data", "/var/lib/etcd/data is not empty")])
            ign = R.apply_ignore(vs, {"DirAvailable--var-lib-etcd-data"})
            self.assertEqual([v.severity for v in ign], ["warning"])
            # lost+found beside data/ does not matter: the check is on the dataDir itself
            fs.write("/var/lib/etcd/lost+found/x", "x")
            self.assertEqual(R.preflight_init_node(fs, "/var/lib/etcd/empty-or-absent"), [])

    def test_static_pod_manifest_present(self):
        """preflight/checks.go:904 (InitNodeChecks): FileAvailable on GetStaticPodFilepath(etcd, manifestsDir)."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            fs.write("/etc/kubernetes/manifests/etcd.yaml", "x")
            self.assertEqual([v.check for v in R.preflight_init_node(fs, None)], ["FileAvailable--etc-kubernetes-manifests-etcd.yaml"])


class JoinCerts(unittest.TestCase):
    def test_apiserver_without_node_name(self):
        """phases/certs/certs.go:210 (writeCertificateFilesIfNotExist) -> validateCertificateWithConfig (line not
        found in the stored copy): errors.Wrapf(VerifyHostname err, 'certificate %s is invalid'); certlist.go
        CreateFromCA (line not checked) 'failed to write or validate certificate %q'; phases/certs/certs.go:57
        (CreatePKIAssets) 'error creating PKI assets'."""
        with tempfile.TemporaryDirectory() as d:
            names = [n for n in APISERVER_NAMES if n != NODE]
            box = Box(d, apiserver_names=names)
            vs = R.check_join_certs(box.pki(), {"apiserver": APISERVER_NAMES, "etcd-server": ETCD_NAMES, "etcd-peer": ETCD_NAMES})
            dns = ", ".join(n for n in names if not R.parse_ip(n))
            self.assertEqual([v.message for v in vs], [
                f'error creating PKI assets: failed to write or validate certificate "apiserver": certificate apiserver is invalid: '
                f"x509: certificate is valid for {dns}, not {NODE}"])

    def test_etcd_server_without_node_ip(self):
        """util/pkiutil/pki_helpers.go getAltNames (line not checked): etcd server names advertise address; Go x509
        HostnameError lists the IP SANs for an IP host."""
        with tempfile.TemporaryDirectory() as d:
            box = Box(d, etcd_server_names=[NODE, "localhost", "127.0.0.1", "::1"])
            vs = R.check_join_certs(box.pki(), {"etcd-server": ETCD_NAMES})
            self.assertEqual(vs[0].message, 'error creating PKI assets: failed to write or validate certificate "etcd-server": '
                                            f"certificate etcd/server is invalid: x509: certificate is valid for 127.0.0.1, ::1, not {IP}")

    def test_signed_by_another_ca(self):
        """phases/certs/certs.go:222 (writeCertificateFilesIfNotExist): chain check fails ->
        'certificate %s is not signed by corresponding CA'."""
        with tempfile.TemporaryDirectory() as d:
            box = Box(d, foreign={"etcd/peer"})
            vs = R.check_join_certs(box.pki(), {"etcd-peer": ETCD_NAMES})
            self.assertEqual(vs[0].message, 'error creating PKI assets: failed to write or validate certificate "etcd-peer": '
                                            "certificate etcd/peer is not signed by corresponding CA")

    def test_accepted(self):
        """All names present, all signed: CreatePKIAssets uses the existing files."""
        with tempfile.TemporaryDirectory() as d:
            box = Box(d)
            self.assertEqual(R.check_join_certs(box.pki(), {"apiserver": APISERVER_NAMES, "etcd-server": ETCD_NAMES,
                                                            "etcd-peer": ETCD_NAMES}), [])

    def test_wildcard_and_case(self):
        """crypto/x509 matchHostnames: '*' matches one leftmost label, case-insensitively."""
        cert, _ = make_leaf(make_ca(), "x", ["*.Example.com"])
        self.assertIsNone(R.go_verify_hostname(cert, "a.example.COM"))
        self.assertEqual(R.go_verify_hostname(cert, "a.b.example.com"), "x509: certificate is valid for *.Example.com, not a.b.example.com")


class InitCerts(unittest.TestCase):
    def test_foreign_cert_refused_names_not_checked(self):
        """cmd/phases/init/certs.go:274-275 (runCertPhase): VerifyCertChain only -> '[certs] certificate %s not signed
        by CA certificate %s'; names are not checked (an apiserver cert lacking the node name is reused)."""
        with tempfile.TemporaryDirectory() as d:
            box = Box(d, apiserver_names=["kubernetes"], foreign={"apiserver-etcd-client"})
            vs = R.check_init_certs(box.pki())
            self.assertEqual([v.message for v in vs], [
                "error execution phase certs/apiserver-etcd-client: [certs] certificate apiserver-etcd-client not signed by "
                "CA certificate etcd/ca: x509: certificate signed by unknown authority"])


class Discovery(unittest.TestCase):
    TOKEN = "abcdef.0123456789abcdef"

    def cluster(self, ca, **kw):
        c = {"controlPlaneEndpoint": f"{LB}:443", "ca": pem(ca).decode(),
             "tokens": [{"token": self.TOKEN, "groups": [R.NODE_BOOTSTRAP_GROUP], "usages": ["signing", "authentication"]}]}
        c.update(kw)
        return c

    def test_wrong_ca_hash(self):
        """discovery/token/token.go:205 (validateClusterCA): 'cluster CA found in %s ConfigMap is invalid' wrapping
        util/pubkeypin/pubkeypin.go:81 (Set.CheckAny) 'none of the public keys %q are pinned'; discovery/discovery.go
        For (line not checked): 'couldn't validate the identity of the API Server'."""
        ca, _ = make_ca()
        other, _ = make_ca()
        vs = R.check_discovery(self.cluster(ca), f"{LB}:443", self.TOKEN, [R.spki_hash(other)], False, ca)
        self.assertEqual(vs[0].message, "couldn't validate the identity of the API Server: cluster CA found in cluster-info "
                                        f'ConfigMap is invalid: none of the public keys "{R.spki_hash(ca)}" are pinned')
        self.assertEqual(R.check_discovery(self.cluster(ca), f"{LB}:443", self.TOKEN, [R.spki_hash(ca)], False, ca), [])

    def test_hash_format(self):
        """util/pubkeypin/pubkeypin.go:102 (Set.allowSHA256) 'expected a %d byte SHA-256 hash, found %d bytes';
        pubkeypin.go:53 (Set.Allow) 'Known format(s) are'."""
        vs = R.check_ca_cert_hashes(["sha256:" + "ab" * 31])
        self.assertEqual(vs[0].message, 'invalid discovery token CA certificate hash: invalid hash "sha256:' + "ab" * 31 +
                         '", expected a 32 byte SHA-256 hash, found 31 bytes')
        self.assertIn("Known format(s) are: sha256", R.check_ca_cert_hashes(["deadbeef"])[0].message)

    def test_token_not_in_cluster(self):
        """discovery/token/token.go:241 (getClusterInfo): 'could not find a JWS signature in the cluster-info ConfigMap
        for token ID %q'."""
        ca, _ = make_ca()
        vs = R.check_discovery(self.cluster(ca), f"{LB}:443", "zzzzzz.0123456789abcdef", [R.spki_hash(ca)], False, ca)
        self.assertTrue(vs[0].message.endswith('could not find a JWS signature in the cluster-info ConfigMap for token ID "zzzzzz"'))

    def test_wrong_secret_and_unreachable(self):
        """discovery/token/token.go:184 (validateClusterInfoToken) 'failed to verify JWS signature ...'; token.go:235
        (getClusterInfo) lastError 'failed to request the cluster-info ConfigMap' when nothing answers at apiServerEndpoint."""
        ca, _ = make_ca()
        vs = R.check_discovery(self.cluster(ca), f"{LB}:443", "abcdef.ffffffffffffffff", [R.spki_hash(ca)], False, ca)
        self.assertIn("failed to verify JWS signature of received cluster info object, can't trust this API Server", vs[0].message)
        vs = R.check_discovery(self.cluster(ca), "10.0.0.9:6443", self.TOKEN, [R.spki_hash(ca)], False, ca)
        self.assertEqual(vs[0].rule, "kubeadm/discovery-unreachable")
        self.assertIn("failed to request the cluster-info ConfigMap", vs[0].message)


class Tokens(unittest.TestCase):
    def test_token_format(self):
        """apis/bootstraptoken/v1/utils.go:85 (NewBootstrapTokenString) 'the bootstrap token %q was not of the form %q';
        apis/kubeadm/validation/validation.go:255 (ValidateToken) 'the bootstrap token is invalid' for discovery."""
        vs = R.check_init_bootstrap_tokens([{"token": "@TOKEN@"}])
        self.assertEqual(vs[0].message, 'the bootstrap token "@TOKEN@" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z"')
        vs = R.check_join_discovery({"discovery": {"bootstrapToken": {"apiServerEndpoint": "a:443", "token": "ABCDEF.0123456789abcdef",
                                                                      "caCertHashes": ["sha256:x"]}}})
        self.assertEqual(vs[0].message, 'discovery.bootstrapToken.token: Invalid value: "ABCDEF.0123456789abcdef": the bootstrap token is invalid')

    def test_groups(self):
        """apis/kubeadm/validation/validation.go:274-275 (ValidateTokenGroups) -> cluster-bootstrap
        ValidateBootstrapGroupName; and (scopectl) the default-node-token group bound by
        phases/bootstraptoken/node/tlsbootstrap.go:68 (AllowBootstrapTokensToPostCSRs)."""
        vs = R.check_init_bootstrap_tokens([{"token": "abcdef.0123456789abcdef", "usages": ["signing", "authentication"],
                                             "groups": ["system:bootstrappers:Scope"]}])
        self.assertEqual(vs[0].message, 'bootstrapTokens[0].groups: Invalid value: []string{"system:bootstrappers:Scope"}: '
                         'bootstrap group "system:bootstrappers:Scope" is invalid (must match '
                         '\\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z)')
        self.assertEqual(vs[1].rule, "scopectl/token-node-group")
        ok = R.check_init_bootstrap_tokens([{"token": "abcdef.0123456789abcdef", "usages": ["signing", "authentication"],
                                             "groups": [R.NODE_BOOTSTRAP_GROUP]}])
        self.assertEqual(ok, [])


class Config(unittest.TestCase):
    def test_strict_fields_warn_old_api_errors_args_map_errors(self):
        """util/config/strict/strict.go:53-54 (VerifyUnmarshalStrict) only klog.Warning's for init/join (its result is
        ignored at util/config/initconfiguration.go:296); util/config/common.go:90 (validateSupportedVersion) refuses
        old APIs; v1beta4 kubeletExtraArgs is []Arg (apis/kubeadm/v1beta4/types.go Arg, line not checked; a map fails
        to decode at initconfiguration.go:303/313 (documentMapToInitConfiguration))."""
        vs = R.check_config_documents([
            {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersoin": "v1.34.2"},
            {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration", "nodeRegistration": {"kubeletExtraArgs": {"cloud-provider": "external"}}},
            {"apiVersion": "kubeadm.k8s.io/v1beta1", "kind": "InitConfiguration"}])
        self.assertEqual([(v.rule, v.severity) for v in vs], [
            ("kubeadm/config-unknown-field", "warning"), ("kubeadm/config-args-list", "error"), ("kubeadm/config-api-version", "error")])
        self.assertIn('json: unknown field "kubernetesVersoin"', vs[0].message)

    def test_node_name_and_discovery_required(self):
        """apis/kubeadm/validation/validation.go:136-137 (ValidateNodeRegistrationOptions, IsDNS1123Subdomain),
        :183 (ValidateDiscoveryBootstrapToken) and :152 (ValidateDiscovery)."""
        vs = R.check_node_name("@NODE_NAME@")
        self.assertTrue(vs[0].message.startswith('nodeRegistration.name: Invalid value: "@NODE_NAME@": a lowercase RFC 1123 subdomain'))
        self.assertEqual(R.check_node_name(NODE), [])
        vs = R.check_join_discovery({"discovery": {"bootstrapToken": {"apiServerEndpoint": f"{LB}:443", "token": "abcdef.0123456789abcdef"}}})
        self.assertIn("using token-based discovery without caCertHashes can be unsafe", vs[0].message)
        self.assertEqual(R.check_join_discovery({})[0].message, 'discovery: Invalid value: "": bootstrapToken or file must be set')


class Versions(unittest.TestCase):
    def test_label_offline_falls_back_to_kubeadm(self):
        """util/version.go:102-103 (kubernetesReleaseVersion): fetch fails -> klog.Warningf + 'falling back to the local
        client version' (a floating kubeadm 1.35 turns stable-1.34 into v1.35.0); scopectl/pinned-version flags it."""
        v, ws = R.resolve_kubernetes_version("stable-1.34", "v1.35.0")
        self.assertEqual(v, "v1.35.0")
        self.assertEqual(ws[1].message, "falling back to the local client version: v1.35.0")
        self.assertEqual([x.rule for x in R.scopectl_pinned_version("stable-1.34", {"kubeadm": ""})],
                         ["scopectl/pinned-version", "scopectl/pinned-version"])
        self.assertEqual(R.scopectl_pinned_version("v1.34.2", {"kubeadm": "1.34.2-1.1"}), [])

    def test_too_old_and_too_new(self):
        """util/config/common.go:147-148 (NormalizeKubernetesVersion) (MinimumControlPlaneVersion = minor-1: error);
        preflight/checks.go:564 (KubernetesVersionCheck.Check) (newer than kubeadm: warning only)."""
        vs = R.check_control_plane_version("v1.32.4", "v1.34.2")
        self.assertEqual(vs[0].message, "this version of kubeadm only supports deploying clusters with the control plane "
                                        "version >= 1.33.0. Current version: v1.32.4")
        vs = R.check_control_plane_version("v1.35.0", "v1.34.2")
        self.assertEqual((vs[0].severity, vs[0].message), ("warning", "Kubernetes version is greater than kubeadm version. "
                         "Please consider to upgrade kubeadm. Kubernetes version: 1.35.0. Kubeadm version: 1.34.x"))
        self.assertEqual(R.check_control_plane_version("v1.33.1", "v1.34.2"), [])

    def test_kubelet_newer_than_control_plane(self):
        """preflight/checks.go:601-602 (KubeletVersionCheck.Check) (init); scopectl/kubelet-skew for join (kubeadm passes
        no version there: preflight/checks.go:1008 (JoinNodeChecks))."""
        vs = R.check_kubelet_version_init("v1.35.0", "v1.34.2", "v1.34.2")
        self.assertIn("the kubelet version is higher than the control plane version", vs[0].message)
        self.assertEqual(R.scopectl_kubelet_skew("v1.35.0", "v1.34.2")[0].rule, "scopectl/kubelet-skew")


class SharedCerts(unittest.TestCase):
    def test_missing_etcd_ca_and_sa(self):
        """cmd/phases/join/preflight.go:144 (checkIfReadyForAdditionalControlPlane) -> phases/certs/certs.go:290
        (SharedCertificateExists), shown inside cmd/phases/join/preflight.go:42 (notReadyToJoinControlPlaneTemp)."""
        with tempfile.TemporaryDirectory() as d:
            box = Box(d)
            os.remove(box.fs.p("/etc/kubernetes/pki/etcd/ca.crt"))
            vs = R.not_ready_to_join_control_plane(R.check_shared_certificates(box.pki()))
            self.assertIn("One or more conditions for hosting a new control plane instance is not satisfied.", vs[0].message)
            self.assertIn("failure loading certificate for etcd CA", vs[0].message)
            self.assertEqual(R.check_shared_certificates(Box(d).pki()), [])


class ExistingNode(unittest.TestCase):
    def test_name_taken_by_another_address(self):
        """cmd/phases/join/kubelet.go:221 (runKubeletStartJoinPhase): 'a Node with name %q and status %q already exists'."""
        vs = R.check_existing_node({NODE: {"address": "10.0.9.9"}}, NODE, IP)
        self.assertIn(f'a Node with name "{NODE}" and status "Ready" already exists in the cluster', vs[0].message)
        self.assertEqual(R.check_existing_node({NODE: {"address": IP}}, NODE, IP), [])


INIT = f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "abcdef.0123456789abcdef"
    ttl: "0s"
    usages: [signing, authentication]
    groups: ["system:bootstrappers:kubeadm:default-node-token"]
nodeRegistration:
  name: "{NODE}"
  kubeletExtraArgs:
    - name: cloud-provider
      value: external
skipPhases: [addon/coredns]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: scope
kubernetesVersion: "{{version}}"
controlPlaneEndpoint: "{LB}:443"
etcd:
  local:
    dataDir: /var/lib/etcd/data
encryptionAlgorithm: ECDSA-P256
networking:
  serviceSubnet: 10.96.0.0/12
  podSubnet: 10.244.0.0/16
  dnsDomain: cluster.local
"""

JOIN = """apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{lb}:443"
    token: "abcdef.0123456789abcdef"
    caCertHashes:
      - "{hash}"
nodeRegistration:
  name: "{name}"
"""


class StandIn(unittest.TestCase):
    """The CLI end to end: init on master-0, then a worker's join."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.cluster = os.path.join(self.tmp.name, "cluster")

    def tearDown(self):
        self.tmp.cleanup()

    def kubeadm(self, box, *args, packages=None, ip=IP):
        root, state = os.path.join(self.tmp.name, box), os.path.join(self.tmp.name, box + "-state")
        os.makedirs(state, exist_ok=True)
        with open(os.path.join(state, "packages.json"), "w") as f:
            json.dump(packages or {"kubeadm": "1.34.2-1.1", "kubelet": "1.34.2-1.1", "kubectl": "1.34.2-1.1"}, f)
        env = dict(os.environ, SCOPECTL_BOOT_ROOT=root, SCOPECTL_BOOT_STATE=state, SCOPECTL_BOOT_CLUSTER=self.cluster,
                   SCOPECTL_BOOT_TIME_SCALE="0.001", SCOPECTL_BOOT_ADVERTISE_ADDRESS=ip, SCOPECTL_BOOT_PYTHON=sys.executable)
        p = subprocess.run([os.path.join(HERE, "kubeadm"), *args], env=env, capture_output=True, text=True)
        return p, load(state, "kubeadm-verdict.json")

    def init_master(self, version="v1.34.2", packages=None, secure=True):
        """master-0's init, with Secrets encrypted at rest and an audit log as
        scopectl renders them (secure=False: without, which scopectl refuses)."""
        m0 = Box(os.path.join(self.tmp.name, "m0"))
        config = INIT.replace("{version}", version)
        if secure:
            config += API_SERVER_EXTRAS
            write_apiserver_files(m0.fs)
        m0.fs.write("/etc/kubernetes/scopectl/kubeadm.yaml", config)
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", packages=packages)
        return m0, p, v

    def test_an_api_server_without_encryption_at_rest_is_refused(self):
        """scopectl's own rule (issue 26): kube-apiserver without --encryption-provider-config keeps Secrets in plaintext."""
        _, _, v = self.init_master(secure=False)
        self.assertFalse(v["ok"], v)
        self.assertEqual([x["rule"] for x in v["violations"]], ["scopectl/encryption-at-rest"], v)

    def test_init_then_worker_join(self):
        """init writes cluster state and etcd.yaml ('    - --name=<node>'); a worker joins, kubelet-start writes ca.crt."""
        m0, p, v = self.init_master()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(v["ok"], v)
        self.assertIn(f"    - --name={NODE}\n", m0.fs.read("/etc/kubernetes/manifests/etcd.yaml").decode())
        cluster = load(self.cluster, "cluster.json")
        self.assertEqual(cluster["kubernetesVersion"], "v1.34.2")
        w = S.FS(os.path.join(self.tmp.name, "w1"))
        w.write("/etc/kubernetes/scopectl/kubeadm.yaml", JOIN.format(lb=LB, hash=R.spki_hash(m0.ca), name="ip-10-0-2-7.ec2.internal"))
        p, v = self.kubeadm("w1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip="10.0.2.7")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(w.exists("/etc/kubernetes/pki/ca.crt"))
        self.assertEqual(load(self.cluster, "nodes", "ip-10-0-2-7.ec2.internal.json")["role"], "worker")

    def test_worker_with_fetched_ca_refused(self):
        """preflight/checks.go:1033 (RunJoinNodeChecks) FileAvailable--etc-kubernetes-pki-ca.crt, as kubeadm prints it
        (preflight/checks.go:1124, :1155), exit 1, verdict written."""
        m0, _, _ = self.init_master()
        w = S.FS(os.path.join(self.tmp.name, "w1"))
        w.write("/etc/kubernetes/pki/ca.crt", pem(m0.ca))   # scopectl-state fetch-join puts it there
        w.write("/etc/kubernetes/scopectl/kubeadm.yaml", JOIN.format(lb=LB, hash=R.spki_hash(m0.ca), name="ip-10-0-2-7.ec2.internal"))
        p, v = self.kubeadm("w1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip="10.0.2.7")
        self.assertEqual(p.returncode, 1)
        self.assertIn("error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                      "\t[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists", p.stderr)
        self.assertEqual((v["ok"], v["command"], v["violations"][0]["rule"]), (False, "join", "kubeadm/preflight"))

    def test_join_before_init_times_out(self):
        """discovery/token/token.go:219 (getClusterInfo) polls until timeouts.discovery (x SCOPECTL_BOOT_TIME_SCALE), then fails preflight."""
        w = S.FS(os.path.join(self.tmp.name, "w1"))
        w.write("/etc/kubernetes/scopectl/kubeadm.yaml", JOIN.format(lb=LB, hash="sha256:" + "0" * 64, name="ip-10-0-2-7.ec2.internal"))
        p, v = self.kubeadm("w1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip="10.0.2.7")
        self.assertEqual(p.returncode, 1)
        self.assertIn("error execution phase preflight: couldn't validate the identity of the API Server: "
                      "failed to request the cluster-info ConfigMap", p.stderr)

    def test_floating_kubeadm_and_label(self):
        """Offline, 'stable-1.34' with a floating kubeadm (1.35.0) deploys v1.35.0: kubeadm succeeds with
        warnings, scopectl/pinned-version makes the verdict not ok (exit status stays kubeadm's)."""
        _, p, v = self.init_master("stable-1.34", packages={"kubeadm": "", "kubelet": "", "kubectl": ""})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((v["ok"], v["kubeadm_ok"]), (False, True))
        self.assertIn("falling back to the local client version: v1.35.0", p.stderr)
        self.assertEqual(load(self.cluster, "cluster.json")["kubernetesVersion"], "v1.35.0")

    def test_control_plane_join_cert_lacks_this_master(self):
        """join --control-plane with master-0's apiserver certificate: control-plane-prepare/certs refuses it
        (validateCertificateWithConfig, line not found in the stored copy; node name first); one naming both masters is accepted and the new
        master becomes an etcd member with '--initial-cluster-state=existing'."""
        m0, _, _ = self.init_master()
        m1_name, m1_ip = "ip-10-0-1-6.ec2.internal", "10.0.1.6"
        m1 = Box(os.path.join(self.tmp.name, "m1"))
        cfg = JOIN.format(lb=LB, hash=R.spki_hash(m0.ca), name=m1_name) + "controlPlane: {}\n"
        m1.fs.write("/etc/kubernetes/scopectl/kubeadm.yaml", cfg)
        # the shared PKI: same CAs as master-0
        for f in ("ca", "front-proxy-ca", "etcd/ca"):
            for ext in ("crt", "key"):
                m1.fs.write(f"/etc/kubernetes/pki/{f}.{ext}", m0.fs.read(f"/etc/kubernetes/pki/{f}.{ext}"))
        for _, base, ca in R.LEAVES:
            m1.fs.write(f"/etc/kubernetes/pki/{base}.crt", m0.fs.read(f"/etc/kubernetes/pki/{base}.crt"))
        p, v = self.kubeadm("m1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip=m1_ip)
        self.assertEqual(p.returncode, 1)
        self.assertIn('error execution phase control-plane-prepare/certs: error creating PKI assets: failed to write or validate '
                      f'certificate "apiserver": certificate apiserver is invalid: x509: certificate is valid for ', p.stderr)
        self.assertIn(f", not {m1_name}", p.stderr)
        # certificates issued for every master: accepted
        ca = (x509.load_pem_x509_certificate(m0.fs.read("/etc/kubernetes/pki/ca.crt")),
              serialization.load_pem_private_key(m0.fs.read("/etc/kubernetes/pki/ca.key"), None))
        eca = (x509.load_pem_x509_certificate(m0.fs.read("/etc/kubernetes/pki/etcd/ca.crt")),
               serialization.load_pem_private_key(m0.fs.read("/etc/kubernetes/pki/etcd/ca.key"), None))
        both = APISERVER_NAMES + [m1_name, m1_ip]
        for base, issuer, names in (("apiserver", ca, both), ("etcd/server", eca, ETCD_NAMES + [m1_name, m1_ip]),
                                    ("etcd/peer", eca, ETCD_NAMES + [m1_name, m1_ip])):
            c, k = make_leaf(issuer, base, names)
            m1.fs.write(f"/etc/kubernetes/pki/{base}.crt", pem(c))
            m1.fs.write(f"/etc/kubernetes/pki/{base}.key", pem(k))
        # Every master writes the env's encryption config and audit policy
        # (the same key: scopectl-state fetch-pki) before kubeadm runs.
        for f in ("/etc/kubernetes/apiserver/encryption.yaml", "/etc/kubernetes/apiserver/audit-policy.yaml"):
            m1.fs.write(f, m0.fs.read(f), 0o600)
        p, v = self.kubeadm("m1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip=m1_ip)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([m["name"] for m in load(self.cluster, "cluster.json")["etcdMembers"]], [NODE, m1_name])
        etcd = m1.fs.read("/etc/kubernetes/manifests/etcd.yaml").decode()
        self.assertIn(f"    - --name={m1_name}\n", etcd)
        self.assertIn("    - --initial-cluster-state=existing\n", etcd)

    def test_restart_on_etcd_data_needs_ignore(self):
        """scopectl-etcd restart: init on a volume with etcd data fails DirAvailable--var-lib-etcd-data unless ignored."""
        m0 = Box(os.path.join(self.tmp.name, "m0"))
        m0.fs.write("/var/lib/etcd/data/member/snap/db", "x")
        m0.fs.write("/etc/kubernetes/scopectl/kubeadm.yaml", INIT.replace("{version}", "v1.34.2") + API_SERVER_EXTRAS)
        write_apiserver_files(m0.fs)
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml")
        self.assertEqual(p.returncode, 1)
        self.assertIn("[ERROR DirAvailable--var-lib-etcd-data]: /var/lib/etcd/data is not empty", p.stderr)
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml",
                            "--ignore-preflight-errors=DirAvailable--var-lib-etcd-data")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("\t[WARNING DirAvailable--var-lib-etcd-data]: /var/lib/etcd/data is not empty", p.stderr)


# ---------------------------------------------------------------------------
# extraArgs / extraVolumes, the control-plane static Pods, kube-apiserver's encryption and audit files
# ---------------------------------------------------------------------------

def key_b64(n=32):
    return base64.b64encode(os.urandom(n)).decode()


ENCRYPTION = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: {secret}
      - identity: {{}}
"""

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets, configmaps]
      - group: authentication.k8s.io
        resources: [tokenreviews]
  - level: None
    verbs: [get, list, watch]
  - level: Request
    verbs: [create, update, patch, delete, deletecollection]
"""

# the lead's ClusterConfiguration addition (appended to INIT's ClusterConfiguration, its last document)
API_SERVER_EXTRAS = """apiServer:
  extraArgs:
    - name: encryption-provider-config
      value: /etc/kubernetes/apiserver/encryption.yaml
    - name: audit-policy-file
      value: /etc/kubernetes/apiserver/audit-policy.yaml
    - name: audit-log-path
      value: /var/log/kubernetes/audit/audit.log
    - name: audit-log-maxage
      value: "30"
    - name: audit-log-maxbackup
      value: "10"
    - name: audit-log-maxsize
      value: "100"
  extraVolumes:
    - name: scopectl-apiserver
      hostPath: /etc/kubernetes/apiserver
      mountPath: /etc/kubernetes/apiserver
      readOnly: true
      pathType: DirectoryOrCreate
    - name: audit-log
      hostPath: /var/log/kubernetes/audit
      mountPath: /var/log/kubernetes/audit
      pathType: DirectoryOrCreate
"""


def cluster_cfg(extras=API_SERVER_EXTRAS):
    return {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", **yaml.safe_load(extras)}


def write_apiserver_files(fs, secret=None, enc_mode=0o600, policy=AUDIT_POLICY, encryption=None):
    fs.write("/etc/kubernetes/apiserver/encryption.yaml", encryption or ENCRYPTION.format(secret=secret or key_b64()), enc_mode)
    fs.write("/etc/kubernetes/apiserver/audit-policy.yaml", policy, 0o644)


def rules_of(vs, severity="error"):
    return [v.rule for v in vs if v.severity == severity]


class ExtraArgsAndVolumes(unittest.TestCase):
    def test_v1beta4_lists_accepted_duplicates_allowed(self):
        """apis/kubeadm/v1beta4/types.go ControlPlaneComponent: extraArgs []Arg, extraVolumes []HostPathMount;
        'Duplicate extra arguments are allowed.'; validation.go:725 (ValidateExtraArgs) checks only the name."""
        cc = cluster_cfg()
        self.assertEqual(R.check_config_documents([cc]), [])
        cc["apiServer"]["extraArgs"].append({"name": "audit-log-maxage", "value": "7"})
        self.assertEqual(R.check_config_documents([cc]), [])
        self.assertEqual(R.component_args(cc, "kube-apiserver")["audit-log-maxage"], "7")   # the last one wins

    def test_map_form_unquoted_number_and_nameless_arg_refused(self):
        """v1beta3's map form does not decode into []v1beta4.Arg (util/config/initconfiguration.go:303, an error); an
        unquoted number is a JSON number, not a string; validation.go:730 'argument has no name'; an unknown key in
        an Arg is only strict decoding's warning (util/config/strict/strict.go:53)."""
        cc = cluster_cfg()
        cc["apiServer"]["extraArgs"] = {"audit-log-maxage": "30"}
        vs = R.check_config_documents([cc])
        self.assertEqual([(v.rule, v.message) for v in vs], [("kubeadm/config-args-list",
                         "json: cannot unmarshal object into Go struct field APIServer.apiServer.extraArgs of type []v1beta4.Arg")])
        cc = cluster_cfg(API_SERVER_EXTRAS.replace('value: "30"', "value: 30"))
        self.assertEqual([v.message for v in R.check_config_documents([cc])],
                         ["json: cannot unmarshal number into Go struct field Arg.apiServer.extraArgs.value of type string"])
        cc = cluster_cfg()
        cc["controllerManager"] = {"extraArgs": [{"value": "x"}, {"name": "bind-address", "valeu": "0.0.0.0"}]}
        vs = R.check_config_documents([cc])
        self.assertEqual([(v.rule, v.severity, v.message) for v in vs], [
            ("kubeadm/extra-args-name", "error", 'controllerManager.extraArgs: Invalid value: "index 0": argument has no name'),
            ("kubeadm/config-unknown-field", "warning", 'json: unknown field "controllerManager.extraArgs[1].valeu"')])

    def test_v1beta3_takes_the_map(self):
        """v1beta3 ControlPlaneComponent.ExtraArgs is map[string]string: the map is right there, a list is not."""
        cc = {"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration", "apiServer": {"extraArgs": {"v": "2"}}}
        self.assertEqual(R.check_config_documents([cc]), [])
        cc["apiServer"]["extraArgs"] = [{"name": "v", "value": "2"}]
        self.assertEqual(R.check_config_documents([cc])[0].message,
                         "json: cannot unmarshal array into Go struct field APIServer.apiServer.extraArgs of type map[string]string")

    def test_extra_volumes_decoding(self):
        """HostPathMount decodes strictly typed (readOnly a bool); unknown keys only warn; kubeadm does NOT validate
        name/hostPath/mountPath/pathType (nothing in validation.go: the kubelet does, below)."""
        cc = cluster_cfg(API_SERVER_EXTRAS.replace("readOnly: true", 'readOnly: "true"'))
        self.assertEqual([v.message for v in R.check_config_documents([cc])],
                         ["json: cannot unmarshal string into Go struct field HostPathMount.apiServer.extraVolumes.readOnly of type bool"])
        cc = cluster_cfg()
        cc["apiServer"]["extraVolumes"][1]["type"] = "DirectoryOrCreate"
        cc["apiServer"]["extraVolumes"].append({"name": "", "hostPath": "", "pathType": "Dir"})
        vs = R.check_config_documents([cc])
        self.assertEqual([(v.severity, v.message) for v in vs], [("warning", 'json: unknown field "apiServer.extraVolumes[1].type"')])
        cc["scheduler"] = {"extraVolumes": {"name": "x"}}
        self.assertIn("json: cannot unmarshal object into Go struct field ControlPlaneComponent.scheduler.extraVolumes of type "
                      "[]v1beta4.HostPathMount", [v.message for v in R.check_config_documents([cc])])


class StaticPodVolumes(unittest.TestCase):
    def test_kubelet_refuses_what_kubeadm_lets_through(self):
        """pkg/kubelet/config/common.go:130-131 (tryDecodeSinglePod) 'invalid pod': volume name Required / RFC 1123
        label, hostPath.path Required, hostPath.type NotSupported, mountPath Required and unique
        (pkg/apis/core/validation/validation.go)."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            cc = cluster_cfg()
            self.assertEqual(R.check_static_pod_volumes(fs, cc, "kube-apiserver"), [])
            cc["apiServer"]["extraVolumes"] += [
                {"name": "", "hostPath": "", "mountPath": "/x"},
                {"name": "Audit_Logs", "hostPath": "/var/log/a", "mountPath": "/var/log/kubernetes/audit", "pathType": "Dir"}]
            vs = R.check_static_pod_volumes(fs, cc, "kube-apiserver")
            self.assertEqual(rules_of(vs), ["kubelet/static-pod-invalid"])
            m = vs[0].message
            self.assertTrue(m.startswith('kube-apiserver: the kubelet refuses static Pod "/etc/kubernetes/manifests/kube-apiserver.yaml": invalid pod: ['), m)
            for part in ("spec.volumes[0].name: Required value", "spec.volumes[0].hostPath.path: Required value",
                         'spec.volumes[1].name: Invalid value: "Audit_Logs": a lowercase RFC 1123 label',
                         'spec.volumes[1].hostPath.type: Unsupported value: "Dir": supported values: "", "BlockDevice", '
                         '"CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"',
                         'volumeMounts[2].mountPath: Invalid value: "/var/log/kubernetes/audit": must be unique'):
                self.assertIn(part, m)

    def test_same_name_replaces_default_volume(self):
        """phases/controlplane/volumes.go:161-165 (addComponentVolume): volumes are keyed by name, an extraVolume
        named k8s-certs replaces kubeadm's own (:54) silently."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            cc = cluster_cfg()
            cc["apiServer"]["extraVolumes"].append({"name": "k8s-certs", "hostPath": "/srv/pki", "mountPath": "/srv/pki"})
            vols = R.control_plane_volumes(fs, cc, "kube-apiserver")
            self.assertIsNone(R.container_path(vols, "/etc/kubernetes/pki/ca.crt"))
            self.assertEqual(R.container_path(vols, "/etc/kubernetes/apiserver/encryption.yaml")[1],
                             "/etc/kubernetes/apiserver/encryption.yaml")

    def test_hostpath_type_directory_must_exist(self):
        """pkg/volume/hostpath/host_path.go checkTypeInternal: Directory needs a directory; DirectoryOrCreate makes one."""
        with tempfile.TemporaryDirectory() as d:
            fs = S.FS(d)
            cc = cluster_cfg(API_SERVER_EXTRAS.replace("pathType: DirectoryOrCreate\n    - name: audit-log", "pathType: Directory\n    - name: audit-log"))
            vs = R.check_static_pod_volumes(fs, cc, "kube-apiserver")
            self.assertEqual([v.message for v in vs], ['kube-apiserver: MountVolume.SetUp failed for volume "scopectl-apiserver" : '
                                                       "hostPath type check failed: /etc/kubernetes/apiserver is not a directory"])
            write_apiserver_files(fs)
            self.assertEqual(R.check_static_pod_volumes(fs, cc, "kube-apiserver"), [])


class ApiServerFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.fs = S.FS(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, cc=None, fp=None):
        return R.check_apiserver_files(self.fs, cc or cluster_cfg(), fp)

    def test_lead_config_and_files_accepted(self):
        write_apiserver_files(self.fs)
        self.assertEqual(self.check(), [])

    def test_file_outside_every_volume_or_missing(self):
        """encryptionconfig/config.go:540 (loadDataAndHash) via :229 (LoadEncryptionConfig); audit/policy/reader.go:52:
        the container sees only its volumes."""
        write_apiserver_files(self.fs)
        cc = cluster_cfg()
        del cc["apiServer"]["extraVolumes"][0]
        vs = self.check(cc)
        self.assertEqual(rules_of(vs), ["kube-apiserver/encryption-provider-config", "kube-apiserver/audit-policy-file"])
        self.assertEqual(vs[0].message, 'error while parsing file: error while loading file: error reading encryption provider '
                         'configuration file "/etc/kubernetes/apiserver/encryption.yaml": open /etc/kubernetes/apiserver/encryption.yaml: '
                         'no such file or directory (/etc/kubernetes/apiserver/encryption.yaml is under no hostPath volume of '
                         'kube-apiserver: add an extraVolume mounting its directory)')
        self.assertTrue(vs[1].message.startswith('loading audit policy file: failed to read file path "/etc/kubernetes/apiserver/audit-policy.yaml"'))
        os.remove(self.fs.p("/etc/kubernetes/apiserver/audit-policy.yaml"))
        vs = self.check()
        self.assertEqual(rules_of(vs), ["kube-apiserver/audit-policy-file"])
        self.assertIn('(host /etc/kubernetes/apiserver/audit-policy.yaml via volume "scopectl-apiserver")', vs[0].message)

    def test_mount_maps_to_its_host_directory(self):
        """A file is read at hostPath + its path below mountPath (the volume mounted deepest wins)."""
        self.fs.write("/etc/scopectl/api/encryption.yaml", ENCRYPTION.format(secret=key_b64()))
        self.fs.write("/etc/scopectl/api/audit-policy.yaml", AUDIT_POLICY)
        cc = cluster_cfg(API_SERVER_EXTRAS.replace("hostPath: /etc/kubernetes/apiserver", "hostPath: /etc/scopectl/api"))
        self.assertEqual(self.check(cc), [])
        write_apiserver_files(self.fs)      # at the mount path on the host: not what the Pod sees
        os.remove(self.fs.p("/etc/scopectl/api/encryption.yaml"))
        self.assertEqual(rules_of(self.check(cc)), ["kube-apiserver/encryption-provider-config"])

    def test_encryption_config_validation(self):
        """pkg/apis/apiserver/validation/validation_encryption.go: aescbc keys of 16/24/32 bytes (:58), secretbox 32
        (:61), base64 (:346), strict decoding (encryptionconfig/config.go:145)."""
        bad = {
            ENCRYPTION.replace("aescbc", "secretbox").format(secret=key_b64(16)):
                'resources[0].providers[0].secretbox.keys[0].secret: Invalid value: "REDACTED": secret is not of the expected '
                "length, got 16, expected one of [32]",
            ENCRYPTION.format(secret=key_b64(20)): "got 20, expected one of [16 24 32]",
            ENCRYPTION.format(secret="not base64!"): "secrets must be base64 encoded",
            ENCRYPTION.format(secret=key_b64()).replace("name: key1", "nme: key1"):
                'strict decoding error: unknown field "resources[0].providers[0].aescbc.keys[0].nme"',
            ENCRYPTION.format(secret=key_b64()).replace("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1"):
                'no kind "EncryptionConfiguration" is registered for version "apiserver.config.k8s.io/v1beta1"',
            "": 'encryption provider configuration file "/etc/kubernetes/apiserver/encryption.yaml" is empty',
        }
        for text, want in bad.items():
            write_apiserver_files(self.fs, encryption=text or " ")
            if not text:
                self.fs.write("/etc/kubernetes/apiserver/encryption.yaml", "")
            vs = self.check()
            self.assertEqual(rules_of(vs), ["kube-apiserver/encryption-provider-config"], text)
            self.assertIn(want, vs[0].message)
            self.assertTrue(vs[0].message.startswith("error while parsing file: "))

    def test_scopectl_encryption_at_rest(self):
        """scopectl's rule, not the API server's: secrets covered, first provider (the writer: pkg/storage/value/
        transformer.go:174) aescbc or secretbox with a 32-byte key."""
        cases = {
            ENCRYPTION.format(secret=key_b64(16)): "key that writes is 16 bytes",
            ENCRYPTION.format(secret=key_b64()).replace("[secrets]", "[configmaps]"): 'no resources entry covers "secrets"',
            ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n"
             f"    providers:\n      - identity: {{}}\n      - aescbc:\n          keys: [{{name: key1, secret: {key_b64()}}}]\n"):
                "first provider for secrets is identity",
        }
        for text, want in cases.items():
            write_apiserver_files(self.fs, encryption=text)
            vs = self.check()
            self.assertEqual(rules_of(vs), ["scopectl/encryption-at-rest"], text)
            self.assertIn(want, vs[0].message)
        write_apiserver_files(self.fs, encryption=ENCRYPTION.format(secret=key_b64()).replace("[secrets]", '["*.*"]'))
        self.assertEqual(self.check(), [])

    def test_scopectl_encryption_config_mode(self):
        """scopectl's rule: the key file is 0600 or stricter."""
        write_apiserver_files(self.fs, enc_mode=0o644)
        vs = self.check()
        self.assertEqual([(v.rule, v.message) for v in vs], [("scopectl/encryption-config-mode",
                         "/etc/kubernetes/apiserver/encryption.yaml has mode 0644: it must be 0600 or stricter (no group/other access)")])
        write_apiserver_files(self.fs, enc_mode=0o400)
        self.assertEqual(self.check(), [])

    def test_scopectl_keys_match_between_masters(self):
        """scopectl's rule: a control-plane join must load the providers/keys master-0 started with
        (encryptionconfig/config.go:649, data prefixed with the key NAME: same name, other secret = unreadable)."""
        write_apiserver_files(self.fs, secret=key_b64())
        cc = cluster_cfg()
        fp = S.encryption_fingerprint(self.fs, cc)
        self.assertEqual(self.check(cc, fp), [])
        write_apiserver_files(self.fs, secret=key_b64())
        self.assertEqual(rules_of(self.check(cc, fp)), ["scopectl/encryption-keys-match"])

    def test_audit_policy_validation(self):
        """pkg/apis/audit/validation/validation.go:68-76 (validateLevel), :118-131 (validateOmitStages);
        audit/policy/reader.go:95-96 (0 rules); an unknown field only warns (reader.go:81, lenient fallback)."""
        cases = {
            AUDIT_POLICY.replace("level: None", "level: Nothing"):
                'rules[1].level: Unsupported value: "Nothing": supported values: "None", "Metadata", "Request", "RequestResponse"',
            AUDIT_POLICY.replace("[RequestReceived]", "[Received]"):
                'omitStages[0]: Invalid value: "Received": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic',
            AUDIT_POLICY.split("rules:")[0] + "rules: []\n": "loaded illegal policy with 0 rules",
            AUDIT_POLICY.replace("audit.k8s.io/v1", "audit.k8s.io/v1beta1"): 'no kind "Policy" is registered for version "audit.k8s.io/v1beta1"',
        }
        for text, want in cases.items():
            write_apiserver_files(self.fs, policy=text)
            vs = self.check()
            self.assertEqual(rules_of(vs), ["kube-apiserver/audit-policy-file"], text)
            self.assertIn(want, vs[0].message)
            self.assertTrue(vs[0].message.startswith("loading audit policy file: "))
            self.assertTrue(vs[0].message.endswith(": from file /etc/kubernetes/apiserver/audit-policy.yaml"))
        write_apiserver_files(self.fs, policy=AUDIT_POLICY.replace("  - level: None", "  - level: None\n    verb: [get]"))
        vs = self.check()
        self.assertEqual((rules_of(vs), rules_of(vs, "warning")), ([], ["kube-apiserver/audit-policy-file"]))
        self.assertIn('strict decoding error: unknown field "rules[1].verb"', vs[0].message)

    def test_audit_log_flags_and_volume(self):
        """server/options/audit.go:483-489 (negative), pflag IntVar (not an integer); :510/:527-531 ensureLogFile on a
        read-only volume; scopectl/audit-log-on-host when the log has no hostPath volume or no path."""
        write_apiserver_files(self.fs)
        cc = cluster_cfg(API_SERVER_EXTRAS.replace('"30"', '"-1"').replace('"10"', '"ten"'))
        self.assertEqual([v.message for v in self.check(cc)], [   # parsing fails first: Validate never runs
            'invalid argument "ten" for "--audit-log-maxbackup" flag: strconv.ParseInt: parsing "ten": invalid syntax'])
        cc = cluster_cfg(API_SERVER_EXTRAS.replace('"30"', '"-1"'))
        self.assertEqual([v.message for v in self.check(cc)], ["--audit-log-maxage -1 can't be a negative number"])
        cc = cluster_cfg(API_SERVER_EXTRAS.replace("      mountPath: /var/log/kubernetes/audit\n",
                                                   "      mountPath: /var/log/kubernetes/audit\n      readOnly: true\n"))
        self.assertEqual([v.message for v in self.check(cc)],
                         ['ensureLogFile: open /var/log/kubernetes/audit/audit.log: read-only file system (volume "audit-log" is readOnly)'])
        cc = cluster_cfg()
        del cc["apiServer"]["extraVolumes"][1]
        self.assertEqual(rules_of(self.check(cc)), ["scopectl/audit-log-on-host"])
        cc = cluster_cfg()
        cc["apiServer"]["extraArgs"] = [a for a in cc["apiServer"]["extraArgs"] if a["name"] != "audit-log-path"]
        self.assertEqual(rules_of(self.check(cc)), ["scopectl/audit-log-on-host"])

    def test_waits_for_all_components(self):
        """cmd/phases/join/waitcontrolplane.go:65 (feature gate WaitForAllControlPlaneComponents, alpha there); beta on
        by default in v1.33 (PR 129620), GA locked on in v1.34 (PR 132594)."""
        self.assertTrue(R.waits_for_all_components("v1.34.2", {"WaitForAllControlPlaneComponents": False}))
        self.assertTrue(R.waits_for_all_components("v1.33.1", None))
        self.assertFalse(R.waits_for_all_components("v1.33.1", {"WaitForAllControlPlaneComponents": False}))
        self.assertFalse(R.waits_for_all_components("v1.32.4", None))
        self.assertTrue(R.waits_for_all_components("v1.32.4", {"WaitForAllControlPlaneComponents": True}))


class StandInApiServerFiles(unittest.TestCase):
    """The stand-in end to end with the lead's apiServer extras: init, then a control-plane join."""

    setUp, tearDown, kubeadm = StandIn.setUp, StandIn.tearDown, StandIn.kubeadm

    def init_with_extras(self, files=True):
        m0 = Box(os.path.join(self.tmp.name, "m0"))
        m0.fs.write("/etc/kubernetes/scopectl/kubeadm.yaml", INIT.replace("{version}", "v1.34.2") + API_SERVER_EXTRAS)
        if files:
            write_apiserver_files(m0.fs)
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml")
        return m0, p, v

    def test_init_writes_flags_and_volumes(self):
        m0, p, v = self.init_with_extras()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(v["ok"], v)
        pod = yaml.safe_load(m0.fs.read("/etc/kubernetes/manifests/kube-apiserver.yaml"))
        c = pod["spec"]["containers"][0]
        self.assertIn("--encryption-provider-config=/etc/kubernetes/apiserver/encryption.yaml", c["command"])
        self.assertIn({"mountPath": "/etc/kubernetes/apiserver", "name": "scopectl-apiserver", "readOnly": True}, c["volumeMounts"])
        self.assertTrue(load(self.cluster, "cluster.json")["encryptionFingerprint"])

    def test_init_without_the_files_fails_wait_control_plane(self):
        """The kube-apiserver exits; kubeadm's wait-control-plane reports it unhealthy (util/apiclient/wait.go
        WaitForControlPlaneComponents); no cluster state is uploaded."""
        _, p, v = self.init_with_extras(files=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"error execution phase wait-control-plane: kube-apiserver check failed at https://{IP}:6443/livez", p.stderr)
        self.assertIn("error reading encryption provider configuration file", p.stderr)
        self.assertEqual(v["violations"][0]["rule"], "kube-apiserver/encryption-provider-config")
        self.assertFalse(os.path.exists(os.path.join(self.cluster, "cluster.json")))

    def join_master(self, m0, secret=None, files=True):
        m1 = S.FS(os.path.join(self.tmp.name, "m1"))
        for f in ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"):
            m1.write(f"/etc/kubernetes/pki/{f}", m0.fs.read(f"/etc/kubernetes/pki/{f}"))
        if files:
            write_apiserver_files(m1, encryption=ENCRYPTION.format(secret=secret) if secret else
                                  m0.fs.read("/etc/kubernetes/apiserver/encryption.yaml"))
        m1.write("/etc/kubernetes/scopectl/kubeadm.yaml",
                 JOIN.format(lb=LB, hash=R.spki_hash(m0.ca), name="ip-10-0-1-6.ec2.internal") + "controlPlane: {}\n")
        return self.kubeadm("m1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip="10.0.1.6")

    def test_control_plane_join_same_key_other_key_no_files(self):
        """A control-plane join uses the CLUSTER's ClusterConfiguration (extraArgs/extraVolumes of master-0's init):
        its files must be on this master too, with master-0's key (scopectl/encryption-keys-match: kubeadm exits 0,
        the verdict is not ok); without them kubeadm v1.34 fails wait-control-plane."""
        m0, p, _ = self.init_with_extras()
        self.assertEqual(p.returncode, 0, p.stderr)
        p, v = self.join_master(m0, secret=key_b64())
        self.assertEqual((p.returncode, v["ok"], v["kubeadm_ok"]), (0, False, True), p.stderr)
        self.assertEqual(v["violations"][0]["rule"], "scopectl/encryption-keys-match")
        shutil.rmtree(os.path.join(self.tmp.name, "m1"))
        p, v = self.join_master(m0)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(v["ok"], v)
        shutil.rmtree(os.path.join(self.tmp.name, "m1"))
        os.remove(os.path.join(self.cluster, "nodes", "ip-10-0-1-6.ec2.internal.json"))
        p, v = self.join_master(m0, files=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("error execution phase wait-control-plane: kube-apiserver check failed at https://10.0.1.6:6443/livez", p.stderr)


if __name__ == "__main__":
    unittest.main()
