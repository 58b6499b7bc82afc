"""The join token left behind (scopectl issue 26): box_init's scan of what a worker's boot wrote, boot.py's verdict
rule scopectl/join-token-left, and the kubeadm stand-in's bootstrap-kubelet.conf (written, then removed as kubeadm
does: cmd/phases/join/kubelet.go:148-150, :184).

Run: cd /work/main && python3 -m unittest discover -s tests/boot -p 'test_*.py'
"""

import argparse
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import boot  # noqa: E402
import box_init as B  # noqa: E402
import kubeadm_rules as R  # noqa: E402
import kubeadm_standin as S  # noqa: E402
import test_kubeadm_rules as K  # noqa: E402

TOKEN = "abcdef.0123456789abcdef"   # test_kubeadm_rules' INIT/JOIN token
OTHER = "zyxwvu.zyxwvutsrqponmlk"


def write(root, path, data, mode=0o600):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(full, mode)
    return full


class Scan(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.upper = os.path.join(self.tmp.name, "upper")   # stands in for the overlay's upper dir
        self.out = os.path.join(self.tmp.name, "node-0")      # DIR/<name>
        os.makedirs(self.upper)
        os.makedirs(self.out)
        self.fd = os.open(self.upper, os.O_RDONLY | os.O_DIRECTORY)

    def tearDown(self):
        os.close(self.fd)
        self.tmp.cleanup()

    def scan(self, tokens=(TOKEN,)):
        return B.join_token_scan(self.fd, self.out, list(tokens), tmpfs=())

    def test_token_left_is_a_violation(self):
        """The token file and the rendered kubeadm.yaml, still there: both named, as the box sees them."""
        write(self.upper, "/etc/kubernetes/scopectl/token", TOKEN + "\n")
        write(self.upper, "/etc/kubernetes/scopectl/kubeadm.yaml", K.JOIN.format(lb=K.LB, hash="sha256:00", name="n"))
        write(self.upper, "/etc/kubernetes/scopectl/kubeadm.yaml.in", 'token: "@TOKEN@"\n')
        left, scan = self.scan()
        self.assertEqual(left, ["/etc/kubernetes/scopectl/kubeadm.yaml", "/etc/kubernetes/scopectl/token"])
        self.assertEqual([h["match"] for h in scan["hits"]], ["token", "token"])
        self.assertEqual(scan["tokens"], 1)
        self.assertNotIn(TOKEN, json.dumps(scan))   # the summary never records the token itself

    def test_clean_boot_has_none(self):
        """After `rm -f` of both: what the stand-in's join leaves (kubelet.conf, config.yaml, ca.crt) and a deleted
        file's overlay whiteout (a 0/0 character device, skipped as not regular) are clean."""
        write(self.upper, "/etc/kubernetes/kubelet.conf", S.kubeconfig(K.LB + ":443", b"ca", "system:node:n"))
        write(self.upper, "/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n")
        write(self.upper, "/etc/kubernetes/scopectl/kubeadm.yaml.in", 'token: "@TOKEN@"\n')
        write(self.out, "runcmd-6.log", "[preflight] Running pre-flight checks\nThis node has joined the cluster\n")
        os.mkfifo(os.path.join(self.upper, "etc/kubernetes/scopectl/fifo"))
        left, scan = self.scan()
        self.assertEqual((left, scan["hits"]), ([], []))
        self.assertEqual(scan["files"], 4)

    def test_secret_half_alone_is_found(self):
        """The secret without its id (e.g. a kubeconfig user's token cut in two) is a leak as well."""
        write(self.upper, "/root/notes", "id abcdef secret 0123456789abcdef\n")
        left, scan = self.scan()
        self.assertEqual(left, ["/root/notes"])
        self.assertEqual(scan["hits"], [{"path": "/root/notes", "match": "secret"}])

    def test_runcmd_output_is_cloud_init_output_log(self):
        """A runcmd line that prints the token: on an instance it stays in /var/log/cloud-init-output.log."""
        log = write(self.out, "runcmd-5.log", "token is %s\n" % TOKEN)
        self.assertEqual(self.scan()[0], [log])

    def test_every_known_token_is_looked_for(self):
        write(self.upper, "/tmp-like/x", OTHER)
        self.assertEqual(self.scan([TOKEN])[0], [])
        self.assertEqual(self.scan([TOKEN, OTHER])[0], ["/tmp-like/x"])

    def test_skipped_large_harness_and_symlinks(self):
        """Over 5 MiB: listed as skipped, not read; the harness's own stand-ins: not scanned; symlinks: not followed."""
        write(self.upper, "/opt/big", b"x" * (B.SCAN_MAX_BYTES + 1) + TOKEN.encode())
        write(self.upper, B.LIBEXEC + "/standin.py", TOKEN)
        outside = write(self.tmp.name, "outside", TOKEN)
        os.makedirs(os.path.join(self.upper, "etc"), exist_ok=True)
        os.symlink(outside, os.path.join(self.upper, "etc", "link"))
        left, scan = self.scan()
        self.assertEqual(left, [])
        self.assertEqual(scan["skipped_large"], ["/opt/big"])

    def test_tmpfs_walk_shows_box_paths(self):
        """A tmpfs of the box (/tmp, /run, /dev/shm) is walked from its own path."""
        d = os.path.join(self.tmp.name, "boxtmp")
        write(d, "/sub/kubeadm.yaml.bak", TOKEN)
        self.assertEqual(B.scan_tree(d, B.token_needles([TOKEN])), [(os.path.join(d, "sub/kubeadm.yaml.bak"), "token")])

    def test_no_token_known(self):
        write(self.upper, "/etc/kubernetes/scopectl/token", TOKEN)
        left, scan = self.scan([])
        self.assertEqual(left, [])
        self.assertIn("no join token known", scan["error"])

    def test_needles_and_cluster_tokens(self):
        self.assertEqual(B.token_needles([TOKEN, "not-a-token", "ABCDEF.0123456789ABCDEF"]),
                         {TOKEN.encode(): "token", b"0123456789abcdef": "secret"})
        cluster = os.path.join(self.tmp.name, "cluster")
        write(cluster, "/cluster.json", json.dumps({"tokens": [{"token": TOKEN}, {"token": OTHER}]}))
        self.assertEqual(B.cluster_tokens(cluster), [TOKEN, OTHER])
        self.assertEqual(B.cluster_tokens(os.path.join(self.tmp.name, "none")), [])

    def test_role(self):
        self.assertTrue(B.is_master("master-0") and B.is_master("master-2"))
        self.assertFalse(B.is_master("node-0"))


class Verdict(unittest.TestCase):
    """boot.py's judge: scopectl/join-token-left on a worker whose boot was otherwise ok."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        args = argparse.Namespace(endpoint="http://127.0.0.1:5000", account=None, deadline=120, out=self.tmp.name)
        self.h = boot.Harness(args)

    def tearDown(self):
        self.tmp.cleanup()

    def judge(self, name, token_left, action="join"):
        d = os.path.join(self.tmp.name, name)
        lines = ["/usr/local/sbin/scopectl-install", "/usr/local/sbin/scopectl-state fetch-join",
                 "/usr/local/sbin/scopectl-state join"]
        write(d, "/result.json", json.dumps({"setup_error": None, "stages": [], "token_left": token_left,
                                             "steps": [{"line": x, "status": 0, "seconds": 0.1} for x in lines]}))
        write(d, "/state/kubeadm-verdict.json", json.dumps({"ok": True, "command": action, "node": "n", "violations": []}))
        return self.h.judge({"name": name, "instance_id": "i-1", "private_dns": "n"}, d, 1.0, False, 0)

    def test_token_left_fails_the_worker(self):
        rep = self.judge("node-0", ["/etc/kubernetes/scopectl/token"])
        self.assertEqual((rep["ok"], rep["rule"], rep["step"]),
                         (False, "scopectl/join-token-left", "/usr/local/sbin/scopectl-state join"))
        self.assertIn("/etc/kubernetes/scopectl/token", rep["message"])
        self.assertEqual(rep["token_left"], ["/etc/kubernetes/scopectl/token"])

    def test_clean_worker_and_master_are_ok(self):
        rep = self.judge("node-1", [])
        self.assertEqual((rep["ok"], rep["rule"], rep["token_left"]), (True, None, []))
        rep = self.judge("master-0", None, action="init")
        self.assertEqual((rep["ok"], rep["token_left"]), (True, None))


class StandInBootstrapKubeconfig(unittest.TestCase):
    """The kubeadm stand-in's join, then the scan of the worker's root: kubeadm's bootstrap-kubelet.conf (the
    token) is gone, its kubelet.conf (no token) is no false positive; only scopectl's own copies are left."""

    setUp = K.StandIn.setUp
    tearDown = K.StandIn.tearDown
    kubeadm = K.StandIn.kubeadm
    init_master = K.StandIn.init_master

    def join(self, ip="10.0.2.7"):
        m0, p, _ = self.init_master()
        self.assertEqual(p.returncode, 0, p.stderr)
        w = S.FS(os.path.join(self.tmp.name, "w1"))
        w.write("/etc/kubernetes/scopectl/token", TOKEN + "\n")
        w.write("/etc/kubernetes/scopectl/kubeadm.yaml",
                K.JOIN.format(lb=K.LB, hash=R.spki_hash(m0.ca), name="ip-10-0-2-7.ec2.internal"))
        p, v = self.kubeadm("w1", "join", "--config", "/etc/kubernetes/scopectl/kubeadm.yaml", ip=ip)
        return w, p, v

    def scan(self, w):
        fd = os.open(w.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return B.join_token_scan(fd, os.path.join(self.tmp.name, "none"), [TOKEN], tmpfs=())[0]
        finally:
            os.close(fd)

    def test_join_removes_bootstrap_kubeconfig(self):
        w, p, v = self.join()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(v["ok"], v)
        self.assertFalse(w.exists(S.BOOTSTRAP_KUBELET_CONF))
        self.assertTrue(w.exists("/etc/kubernetes/kubelet.conf"))
        self.assertEqual(self.scan(w), ["/etc/kubernetes/scopectl/kubeadm.yaml", "/etc/kubernetes/scopectl/token"])
        for f in ("/etc/kubernetes/scopectl/token", "/etc/kubernetes/scopectl/kubeadm.yaml"):   # scopectl-state join's rm -f
            os.remove(w.p(f))
        self.assertEqual(self.scan(w), [])

    def test_failed_kubelet_start_removes_it_too(self):
        """The removal is deferred: a kubelet-start that fails (a Ready Node of that name elsewhere) removes it as well."""
        os.makedirs(os.path.join(self.cluster, "nodes"), exist_ok=True)
        with open(os.path.join(self.cluster, "nodes", "ip-10-0-2-7.ec2.internal.json"), "w") as f:
            json.dump({"name": "ip-10-0-2-7.ec2.internal", "address": "10.0.9.9"}, f)
        w, p, v = self.join()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(v["violations"][0]["rule"], "kubeadm/node-exists")
        self.assertFalse(w.exists(S.BOOTSTRAP_KUBELET_CONF))

    def test_bootstrap_kubeconfig_holds_the_token(self):
        """What the scan would find if kubeadm did not remove it."""
        self.assertIn(TOKEN, S.bootstrap_kubeconfig(K.LB + ":443", b"ca", TOKEN))


if __name__ == "__main__":
    unittest.main()
