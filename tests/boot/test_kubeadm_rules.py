"""What real kubeadm refuses (and accepts), rule by rule, plus the stand-in end to end.

Run: /work/main/.venv/bin/python -m unittest discover -s tests/boot -p 'test_*.py'
Sources: kubernetes/kubernetes cmd/kubeadm/app/ as `path:LINE (Function)`; line numbers refer to the stored copy
in the search index (read_file), one commit per file, listed in kubeadm_rules.STORED (mixed commits, ~v1.12-v1.34).
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import unittest

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

    def init_master(self, version="v1.34.2", packages=None):
        m0 = Box(os.path.join(self.tmp.name, "m0"))
        m0.fs.write("/etc/kubernetes/scopectl/kubeadm.yaml", INIT.replace("{version}", version))
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", packages=packages)
        return m0, p, v

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
        m0.fs.write("/etc/kubernetes/scopectl/kubeadm.yaml", INIT.replace("{version}", "v1.34.2"))
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml")
        self.assertEqual(p.returncode, 1)
        self.assertIn("[ERROR DirAvailable--var-lib-etcd-data]: /var/lib/etcd/data is not empty", p.stderr)
        p, v = self.kubeadm("m0", "init", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml",
                            "--ignore-preflight-errors=DirAvailable--var-lib-etcd-data")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("\t[WARNING DirAvailable--var-lib-etcd-data]: /var/lib/etcd/data is not empty", p.stderr)


if __name__ == "__main__":
    unittest.main()
