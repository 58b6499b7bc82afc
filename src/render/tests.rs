use std::path::Path;
use std::process::Command;

use crate::config;
use crate::desired::{desired, tests::sample_facts};
use crate::model::{Kind, Value};

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scope.toml")).unwrap()
}

/// The rendered user data of every instance of `env` in config `text`, by
/// `label/instance`.
fn instances(text: &str, env: &str, label: &str) -> Vec<(String, String)> {
    let config = config::parse(Path::new("examples/scope.toml"), text, env).unwrap();
    let d = desired(&config, &sample_facts()).unwrap();
    d.resources
        .values()
        .filter(|r| r.kind() == Kind::Instance)
        .map(|r| {
            let Some(Value::Str(t)) = r.props.get("user_data_text") else {
                panic!("{} has no user data", r.id);
            };
            (format!("{label}/{}", r.id.name()), t.clone())
        })
        .collect()
}

/// The rendered user data of every instance of every example env that runs
/// on AWS, by `env/instance`.
fn rendered() -> Vec<(String, String)> {
    let text = example();
    ["staging", "prod", "sandbox", "sandbox-peered"]
        .into_iter()
        .flat_map(|env| instances(&text, env, env))
        .collect()
}

/// `rendered()` and a staging with three masters (as `staging-ha/...`): the
/// examples have one master, and the others' user data differs (they join).
fn rendered_with_ha() -> Vec<(String, String)> {
    let text = example();
    let ha = text.replace("masters = { count = 1,", "masters = { count = 3,");
    assert_ne!(
        ha, text,
        "examples/scope.toml no longer has `masters = {{ count = 1, ...`"
    );
    let mut all = rendered();
    all.extend(instances(&ha, "staging", "staging-ha"));
    all
}

/// The `write_files` entries of a user data that are scripts (`#!`), as
/// (path, content).
fn scripts(text: &str) -> Vec<(String, String)> {
    let doc: serde_norway::Value = serde_norway::from_str(text).unwrap();
    doc["write_files"]
        .as_sequence()
        .expect("user data has write_files")
        .iter()
        .filter_map(|f| {
            let content = f["content"].as_str()?;
            let path = f["path"].as_str().expect("a write_files entry has a path");
            content
                .starts_with("#!")
                .then(|| (path.to_string(), content.to_string()))
        })
        .collect()
}

/// The user data's runcmd, each command joined with spaces.
fn runcmd(text: &str) -> Vec<String> {
    let doc: serde_norway::Value = serde_norway::from_str(text).unwrap();
    doc["runcmd"]
        .as_sequence()
        .expect("user data has runcmd")
        .iter()
        .map(|c| match c.as_sequence() {
            Some(args) => args
                .iter()
                .map(|a| {
                    a.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{a:?}"))
                })
                .collect::<Vec<_>>()
                .join(" "),
            None => c
                .as_str()
                .expect("a runcmd entry is a list or a string")
                .to_string(),
        })
        .collect()
}

/// CI must run every check: a missing tool there is a failure, not a skip.
pub(crate) fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

#[test]
fn user_data_snapshots() {
    let all = rendered();
    // One master and one node per env; the rest differ only in their name.
    for (name, text) in all
        .iter()
        .filter(|(n, _)| n.ends_with("/master-0") || n.ends_with("/node-0"))
    {
        insta::assert_snapshot!(format!("user-data-{}", name.replace('/', "-")), text);
    }
}

#[test]
fn user_data_holds_no_secret_and_names_the_instance() {
    for (name, text) in rendered() {
        assert!(text.starts_with("#cloud-config\n"), "{name}");
        // The fetch script names PEM labels; no PEM armour may appear.
        for secret in ["PRIVATE KEY-----", "BEGIN CERTIFICATE", "token: \"abcdef"] {
            assert!(!text.contains(secret), "{name} contains {secret}");
        }
        let instance = name.rsplit('/').next().unwrap();
        assert!(text.contains(&format!("-{instance}\n")), "{name}");
    }
}

/// EC2 refuses user data over 16 KiB (before base64): the largest, a
/// joining master's, fits gzipped with room to spare, and unpacks to the
/// text rendered.
#[test]
fn user_data_fits_ec2s_limit() {
    use std::io::Read as _;
    let all = rendered_with_ha();
    let (name, largest) = all.iter().max_by_key(|(_, t)| t.len()).unwrap();
    let sent = crate::render::compress(largest);
    assert!(
        sent.len() <= crate::render::USER_DATA_LIMIT / 2,
        "{name}: {} bytes gzipped",
        sent.len()
    );
    let mut back = String::new();
    flate2::read::GzDecoder::new(&sent[..])
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(&back, largest);
    assert_eq!(sent, crate::render::compress(largest), "not deterministic");
}

/// Comment lines go; shebangs, ShellCheck directives and everything else
/// stay, line for line.
#[test]
fn comment_lines_are_stripped_from_the_files_in_user_data() {
    let text = "#!/bin/sh\n# a comment\n  # indented\n#\n# shellcheck source=/dev/null\nx=1 # trailing\necho '#x'\n";
    assert_eq!(
        super::strip_comments(text.to_string()),
        "#!/bin/sh\n# shellcheck source=/dev/null\nx=1 # trailing\necho '#x'\n"
    );
    for (name, text) in rendered() {
        for (path, script) in scripts(&text) {
            assert!(
                !script.lines().any(|l| l.trim_start().starts_with("# ")
                    && !l.trim_start().starts_with("# shellcheck ")),
                "{name}: {path}"
            );
        }
    }
}

#[test]
fn an_undefined_variable_is_an_error() {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("t", "{{ nope }}").unwrap();
    assert!(env.get_template("t").unwrap().render(()).is_err());
}

/// `cloud-init schema` (Debian's cloud-init, installed by scripts/test)
/// accepts every rendered user data.
#[test]
fn user_data_passes_cloud_init_schema() {
    let version = Command::new("cloud-init").arg("--version").output();
    if version.is_err() && !in_ci() && std::env::var_os("SCOPECTL_SKIP_CLOUD_INIT").is_some() {
        eprintln!("cloud-init is not installed; SCOPECTL_SKIP_CLOUD_INIT is set: skipped");
        return;
    }
    assert!(
        version.is_ok(),
        "cloud-init is not installed: run scripts/test (it installs Debian's cloud-init); \
         SCOPECTL_SKIP_CLOUD_INIT skips this test, except where CI is set"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in rendered_with_ha() {
        let path = dir.path().join(format!("{}.yaml", name.replace('/', "-")));
        std::fs::write(&path, &text).unwrap();
        let out = Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The YAML must also parse as YAML (a schema check of nothing passes).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Valid cloud-config"),
            "{name}"
        );
    }
}

/// Every script the user data writes passes `sh -n` and `shellcheck -s sh`
/// (ShellCheck: Debian's, installed by scripts/test).
#[test]
fn user_data_scripts_pass_sh_and_shellcheck() {
    let shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    if !shellcheck {
        assert!(
            !in_ci(),
            "shellcheck is not installed: run scripts/test (it installs Debian's shellcheck)"
        );
        eprintln!("shellcheck is not installed: only `sh -n` runs (scripts/test installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in rendered_with_ha() {
        let found = scripts(&text);
        // install and state everywhere, and the etcd volume's on masters.
        let expected = if name.contains("/master-") { 3 } else { 2 };
        assert_eq!(found.len(), expected, "{name}: {found:?}");
        for (path, content) in found {
            let file = dir.path().join(format!(
                "{}-{}",
                name.replace('/', "-"),
                path.rsplit('/').next().unwrap()
            ));
            std::fs::write(&file, &content).unwrap();
            let mut checks = vec![Command::new("sh").arg("-n").arg(&file).output().unwrap()];
            if shellcheck {
                checks.push(
                    Command::new("shellcheck")
                        .args(["-s", "sh"])
                        .arg(&file)
                        .output()
                        .unwrap(),
                );
            }
            for out in checks {
                assert!(
                    out.status.success(),
                    "{name}: {path}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Masters keep etcd on their own volume: the user data mounts it at
/// /var/lib/etcd before kubeadm runs, formats it only when blkid finds
/// nothing on it, and restarts on data it finds there; nodes have none of it.
#[test]
fn masters_keep_etcd_on_their_volume_and_nodes_do_not() {
    let (mut masters, mut joining_masters, mut nodes) = (0, 0, 0);
    for (name, text) in rendered_with_ha() {
        let instance = name.rsplit('/').next().unwrap();
        let commands = runcmd(&text);
        if !instance.starts_with("master-") {
            nodes += 1;
            for etcd in [
                "scopectl-etcd",
                "/var/lib/etcd",
                "mkfs",
                "blkid",
                "etcd-master",
            ] {
                assert!(!text.contains(etcd), "{name} has etcd logic: {etcd}");
            }
            assert_eq!(
                commands.last().map(String::as_str),
                Some("/usr/local/sbin/scopectl-state join"),
                "{name}"
            );
            continue;
        }
        masters += 1;
        // mount, then kubeadm only through `start`, last.
        let at = |c: &str| commands.iter().position(|x| x == c);
        let mount = at("/usr/local/sbin/scopectl-etcd mount").expect(&name);
        let start = at("/usr/local/sbin/scopectl-etcd start").expect(&name);
        assert!(
            mount < start && start == commands.len() - 1,
            "{name}: {commands:?}"
        );
        assert!(
            !commands.iter().any(|c| c.starts_with("kubeadm")),
            "{name}: {commands:?}"
        );

        let (_, script) = scripts(&text)
            .into_iter()
            .find(|(p, _)| p == "/usr/local/sbin/scopectl-etcd")
            .unwrap_or_else(|| panic!("{name} writes no scopectl-etcd"));
        assert!(
            script.contains(&format!("tag='ec2/volume/etcd-{instance}'\n")),
            "{name}"
        );
        for line in [
            "mnt=/var/lib/etcd\n",
            "data=$mnt/data\n",
            "mountpoint -q \"$mnt\" || mount \"$mnt\"\n",
            "echo \"UUID=$uuid $mnt ext4 defaults,nofail 0 2\" >> /etc/fstab\n",
            "blkid -p \"$dev\" >/dev/null 2>&1 || rc=$?\n",
        ] {
            assert!(script.contains(line), "{name}: no {line:?}");
        }
        // One mkfs, never forced, in the branch where blkid found nothing.
        let lines: Vec<&str> = script.lines().map(str::trim).collect();
        let mkfs: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].contains("mkfs"))
            .collect();
        assert_eq!(mkfs.len(), 1, "{name}: {mkfs:?}");
        assert!(
            !lines[mkfs[0]].contains(" -F"),
            "{name}: {}",
            lines[mkfs[0]]
        );
        let guard = lines[..mkfs[0]]
            .iter()
            .rev()
            .find(|l| l.starts_with("if ") || l.starts_with("elif ") || l.starts_with("else"))
            .unwrap();
        assert!(
            guard.starts_with("if [ \"$rc\" = 2 ]"),
            "{name}: mkfs under {guard:?}"
        );

        let data_dir = "/var/lib/etcd/data";
        let ignore = format!(
            "--ignore-preflight-errors=DirAvailable-{}",
            data_dir.replace('/', "-")
        );
        if instance == "master-0" {
            // kubeadm's etcd data dir is the one the script looks at, and the
            // restart ignores exactly its preflight check.
            assert!(text.contains(&format!("dataDir: {data_dir}\n")), "{name}");
            assert!(
                script.contains(&format!("kubeadm init --config \"$config\" {ignore}\n")),
                "{name}"
            );
            assert!(
                script.contains("kubeadm init --config \"$config\"\n"),
                "{name}"
            );
            assert!(!script.contains("kubeadm join"), "{name}");
        } else {
            joining_masters += 1;
            assert!(script.contains("remove_member \"$member\""), "{name}");
            assert!(
                script.contains("kubeadm join --config \"$config\"\n"),
                "{name}"
            );
            assert!(!script.contains("kubeadm init"), "{name}");
        }
    }
    assert!(
        masters >= 5 && joining_masters >= 2 && nodes > 0,
        "{masters} {joining_masters} {nodes}"
    );
}

/// The kubeadm config a user data writes (`kubeadm.yaml.in`), by kind.
fn kubeadm_documents(text: &str) -> Vec<serde_json::Value> {
    let doc: serde_norway::Value = serde_norway::from_str(text).unwrap();
    let config = doc["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str() == Some("/etc/kubernetes/scopectl/kubeadm.yaml.in"))
        .and_then(|f| f["content"].as_str())
        .expect("user data writes kubeadm.yaml.in")
        .to_string();
    super::addons::documents("kubeadm.yaml.in", &config).unwrap()
}

/// KUBEADM-ON-EC2: nodes named as EC2 names the instance (substituted at
/// boot from the instance metadata), CoreDNS skipped (scopectl's add-on owns
/// it), the kubelets' DNS at the tenth service address through resolved's
/// upstream list with the systemd cgroup driver, the cloud left to the cloud
/// controller manager and no cloud-provider flag on the API server.
#[test]
fn kubeadm_configs_follow_the_ec2_facts() {
    let (mut inits, mut joins) = (0, 0);
    for (name, text) in rendered_with_ha() {
        let docs = kubeadm_documents(&text);
        let kind = |k: &str| docs.iter().find(|d| d["kind"] == k);
        let registration = if let Some(init) = kind("InitConfiguration") {
            inits += 1;
            assert_eq!(
                init["skipPhases"],
                serde_json::json!(["addon/coredns"]),
                "{name}"
            );
            let cluster = kind("ClusterConfiguration").expect(&name);
            // Secrets encrypted at rest and an audit log, from files every
            // master writes before kubeadm runs (issue 26).
            let args = cluster["apiServer"]["extraArgs"].to_string();
            for flag in [
                "encryption-provider-config",
                "audit-policy-file",
                "audit-log-path",
                "audit-log-maxbackup",
            ] {
                assert!(args.contains(flag), "{name}: no {flag}: {cluster}");
            }
            assert_eq!(
                cluster["controllerManager"]["extraArgs"],
                serde_json::json!([{"name": "cloud-provider", "value": "external"}]),
                "{name}"
            );
            let kubelet = kind("KubeletConfiguration").expect(&name);
            assert_eq!(kubelet["apiVersion"], "kubelet.config.k8s.io/v1beta1");
            assert_eq!(kubelet["clusterDNS"], serde_json::json!(["10.96.0.10"]));
            assert_eq!(kubelet["resolvConf"], "/run/systemd/resolve/resolv.conf");
            assert_eq!(kubelet["cgroupDriver"], "systemd");
            assert_eq!(
                kubelet["clusterDomain"], cluster["networking"]["dnsDomain"],
                "{name}"
            );
            init["nodeRegistration"].clone()
        } else {
            joins += 1;
            let join = kind("JoinConfiguration").expect(&name);
            assert_eq!(docs.len(), 1, "{name}");
            join["nodeRegistration"].clone()
        };
        assert_eq!(registration["name"], "@NODE_NAME@", "{name}");
        assert_eq!(
            registration["kubeletExtraArgs"],
            serde_json::json!([{"name": "cloud-provider", "value": "external"}]),
            "{name}"
        );

        let (_, state) = scripts(&text)
            .into_iter()
            .find(|(p, _)| p == "/usr/local/sbin/scopectl-state")
            .unwrap();
        assert!(
            state.contains("-e \"s|@NODE_NAME@|$node|\""),
            "{name}: @NODE_NAME@ is never substituted"
        );
        assert!(state.contains("latest/meta-data/local-hostname"), "{name}");
    }
    assert!(inits >= 4 && joins >= 6, "{inits} {joins}");
}

/// The machine as the kubelet and flannel need it: swap off for good,
/// containerd on the systemd cgroup driver, the CNI plugins in /opt/cni/bin,
/// the kernel modules and sysctls loaded before anything runs.
#[test]
fn the_machine_is_prepared_for_the_kubelet_and_the_pod_network() {
    for (name, text) in rendered() {
        let (_, install) = scripts(&text)
            .into_iter()
            .find(|(p, _)| p == "/usr/local/sbin/scopectl-install")
            .unwrap();
        for line in [
            "swapoff -a\n",
            "[[:space:]]swap[[:space:]]/ s/^/#/' /etc/fstab\n",
            "sed -e 's/SystemdCgroup = false/SystemdCgroup = true/'",
            "grep -q 'SystemdCgroup = true' /etc/containerd/config.toml",
            "apt-get -o DPkg::Lock::Timeout=600",
            "apt install -y kubelet=1.35.9-1.1 kubeadm=1.35.9-1.1",
            "apt-mark hold kubelet kubeadm kubectl kubernetes-cni cri-tools\n",
            "registry.k8s.io/pause:3.10.1",
            "--require-hashes --only-binary :all: -r /etc/scopectl/aws-cli.txt",
            "[ \"$fpr\" = \"DE15B14486CD377B9E876E1A234654DA9A296436\" ]",
            "for plugin in bridge host-local loopback portmap; do\n",
        ] {
            assert!(install.contains(line), "{name}: no {line:?}");
        }
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let file = |path: &str| {
            doc["write_files"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|f| f["path"].as_str() == Some(path))
                .and_then(|f| f["content"].as_str())
                .unwrap_or_else(|| panic!("{name}: no {path}"))
                .to_string()
        };
        assert_eq!(
            file("/etc/modules-load.d/k8s.conf"),
            "overlay\nbr_netfilter\n"
        );
        let sysctl = file("/etc/sysctl.d/k8s.conf");
        for s in [
            "net.bridge.bridge-nf-call-iptables = 1",
            "net.ipv4.ip_forward = 1",
        ] {
            assert!(sysctl.contains(s), "{name}: {s}");
        }
        let commands = runcmd(&text);
        assert_eq!(
            commands[..4],
            [
                "modprobe overlay",
                "modprobe br_netfilter",
                "sysctl --system",
                "/usr/local/sbin/scopectl-install"
            ],
            "{name}"
        );
    }
}

/// A service pulling from ECR gets every instance the kubelet's credential
/// provider: the pinned binary checked against its SHA-256, its config, and
/// the kubelet flags in kubeadm's config; without ECR, none of it.
#[test]
fn an_ecr_image_brings_the_kubelets_credential_provider() {
    let ecr = example().replace(
        "image = \"registry.example/scope/users\"",
        "image = \"123456789012.dkr.ecr.us-east-1.amazonaws.com/scope/users\"",
    );
    let pins = crate::render::addons::ecr_credential_provider().unwrap();
    for (name, text) in instances(&ecr, "staging", "staging-ecr") {
        let (_, install) = scripts(&text)
            .into_iter()
            .find(|(p, _)| p == "/usr/local/sbin/scopectl-install")
            .unwrap();
        assert!(install.contains(&pins.url), "{name}");
        assert!(
            install.contains(&format!(
                "echo \"{}  /tmp/ecr-credential-provider\" | sha256sum -c -",
                pins.sha256
            )),
            "{name}"
        );
        assert!(install.contains("kind: CredentialProviderConfig"), "{name}");
        assert!(
            text.contains("value: /var/lib/kubelet/credential-provider.yaml"),
            "{name}"
        );
    }
    for (name, text) in rendered() {
        assert!(!text.contains("ecr-credential-provider"), "{name}");
    }
}
