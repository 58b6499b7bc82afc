//! Flags, parsed once into these structs (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ui::Output;

#[derive(Debug, Parser)]
#[command(name = "scopectl", version = crate::VERSION, about = "Declarative provisioner: kube-up, rewritten", long_about = None)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        env = "SCOPECTL_CONFIG",
        default_value = "scope.toml"
    )]
    pub config: PathBuf,
    /// Environment to act on (a table under [env] in the config).
    #[arg(long, global = true, env = "SCOPECTL_ENV")]
    pub env: Option<String>,
    /// Output format for data on stdout.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: Output,
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// No colour (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Which layers to act on: `aws` (the machines; the Kubernetes API is
    /// never contacted), `cluster` (the Kubernetes objects), or `all`.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SCOPECTL_PHASE",
        default_value = "all"
    )]
    pub phase: Phase,
    /// Reach the Kubernetes API at this URL (an SSH tunnel, a proxy) instead
    /// of its load balancer; its certificate is still checked against the
    /// API's name.
    #[arg(long, global = true, env = "SCOPECTL_API_SERVER", value_name = "URL", value_parser = api_server_url)]
    pub api_server: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The layers a command acts on.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Aws,
    Cluster,
    #[default]
    All,
}

impl Phase {
    pub fn aws(self) -> bool {
        self != Phase::Cluster
    }
    pub fn cluster(self) -> bool {
        self != Phase::Aws
    }
}

/// `NAME=TAG`.
fn image_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, t)) if !n.is_empty() && !t.is_empty() && !t.contains(['/', '@', ':']) => {
            Ok((n.to_string(), t.to_string()))
        }
        _ => Err(format!(
            "`{s}` is not NAME=TAG (a service name and an image tag)"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `up` would change.
    Plan(PlanArgs),
    /// Create or update everything the config describes.
    Up(UpArgs),
    /// Delete everything this env owns.
    Down(DownArgs),
    /// Roll services to new image tags, watched, rolled back on failure;
    /// or show a rollout's status, the history, or undo.
    // Boxed: its flags outweigh every other command's (clippy's large_enum_variant).
    Rollout(Box<RolloutArgs>),
    /// What exists for the env.
    Status,
    /// What differs between two envs, service by service: replicas, tags,
    /// resources, exposure, database, secrets' sources, add-ons.
    DiffEnv(DiffEnvArgs),
    /// Break a stale env lock.
    Unlock(UnlockArgs),
    /// Write an admin kubeconfig from the state store.
    Kubeconfig(KubeconfigArgs),
    /// The cluster PKI: list certificates, or reissue them.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Write a starting scope.toml for an existing RDS database (reads AWS,
    /// changes nothing there).
    Init(InitArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per subcommand.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The existing RDS instance the cluster serves (its identifier).
    #[arg(long, value_name = "RDS_INSTANCE")]
    pub database: String,
    /// Put the cluster in the database's VPC, or in an own VPC peered with it.
    #[arg(long, value_enum, default_value = "beside-database")]
    pub placement: InitPlacement,
    /// Write here instead of the -c/--config path.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// The AWS region to look in (default: AWS_REGION, then the profile's).
    #[arg(long)]
    pub region: Option<String>,
}

/// `network.placement`, as a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InitPlacement {
    BesideDatabase,
    Peered,
}

impl From<InitPlacement> for crate::config::Placement {
    fn from(p: InitPlacement) -> Self {
        match p {
            InitPlacement::BesideDatabase => crate::config::Placement::BesideDatabase,
            InitPlacement::Peered => crate::config::Placement::Peered,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write scopectl.1 and one page per subcommand (scopectl-up.1, …) here.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "scopectl", &mut out);
    out
}

/// The roff man page of the top command.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}

/// Writes `scopectl.1` and a page per subcommand into `dir`.
pub fn man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::generate_to(Cli::command(), dir)
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Write here (created 0600). Default: `<project>-<env>.kubeconfig`.
    #[arg(long, conflicts_with = "merge")]
    pub out: Option<PathBuf>,
    /// Merge into $KUBECONFIG (its first file) or ~/.kube/config, and make
    /// it the current context.
    #[arg(long)]
    pub merge: bool,
    /// How long the certificate it holds is valid: a certificate of your
    /// own (in kubeadm:cluster-admins), issued now and stored nowhere else.
    #[arg(long, value_name = "DURATION", default_value = "18h")]
    pub ttl: humantime::Duration,
    /// The name the API knows you by (the certificate's CN; the audit log's
    /// user). Default: $USER.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Every certificate with its subject, SANs and expiry.
    Status,
    /// Reissue every leaf certificate; with --ca, move the CAs one rotation
    /// stage on (trust a new CA beside the old; sign with the new and reissue
    /// the leaves; drop the old), one approved plan per stage.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Rotate the CAs by one stage instead.
    #[arg(long)]
    pub ca: bool,
    /// Apply without asking.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Also write the plan (JSON, with the observed state's fingerprint) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan moving running instances to the newest matching image.
    #[arg(long)]
    pub upgrade_image: bool,
    /// The image tag of a service's first deployment (repeatable).
    #[arg(long = "image", value_name = "NAME=TAG", value_parser = image_arg)]
    pub images: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Apply without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// Apply exactly this saved plan; refused if reality changed since.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// How many changes may run at once.
    #[arg(long, default_value_t = crate::apply::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// Move running instances to the newest image matching
    /// `cluster.image_name` (replaced one at a time).
    #[arg(long)]
    pub upgrade_image: bool,
    /// Allow replacing the only master (the API is down while it is, and
    /// etcd comes back from its volume).
    #[arg(long)]
    pub allow_control_plane_replace: bool,
    /// The image tag of a service's first deployment (repeatable); a running
    /// service keeps its release's tag (`scopectl rollout` moves it).
    #[arg(long = "image", value_name = "NAME=TAG", value_parser = image_arg)]
    pub images: Vec<(String, String)>,
    /// How long to wait for a working cluster: the Kubernetes API, then
    /// every instance a Ready Node and every add-on and service ready.
    #[arg(long, default_value = "20m")]
    pub timeout: humantime::Duration,
    /// End once the objects are applied, without waiting for the nodes,
    /// add-ons and services to become ready.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Delete without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// List what would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The env's name, required for envs marked `protected = true`.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "20m")]
    pub timeout: humantime::Duration,
    /// Keep the PKI in the state store (a later `up` reuses the same CAs).
    #[arg(long)]
    pub keep_pki: bool,
}

#[derive(Debug, Args)]
pub struct DiffEnvArgs {
    /// The first env (e.g. local).
    pub a: String,
    /// The second env (e.g. staging).
    pub b: String,
    /// Compare the configs only: no cluster is read, tags are those a
    /// first `up` would deploy.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The id of the lock to break, as printed by the command that is locked out.
    pub lock_id: String,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: Option<RolloutCommand>,
    /// The tags: `SERVICE=TAG` for each service to move.
    #[arg(value_name = "SERVICE=TAG", value_parser = image_arg)]
    pub tags: Vec<(String, String)>,
    /// Move every service to this tag.
    #[arg(long, value_name = "TAG", conflicts_with_all = ["tags", "from", "tags_file"])]
    pub all: Option<String>,
    /// The tags of that env's last successful release (promotion).
    #[arg(long, value_name = "ENV", conflicts_with_all = ["tags", "tags_file"])]
    pub from: Option<String>,
    /// Reach the --from env's Kubernetes API at this URL instead of its load
    /// balancer (`--api-server` is the target env's, never the other's).
    #[arg(long, value_name = "URL", requires = "from", value_parser = api_server_url)]
    pub from_api_server: Option<String>,
    /// The tags of a release record another rollout printed (`--output json`).
    #[arg(long, value_name = "FILE", conflicts_with = "tags")]
    pub tags_file: Option<PathBuf>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// How long the release may take; then it is rolled back.
    #[arg(long, default_value = "10m")]
    pub timeout: humantime::Duration,
    /// How long the rollback may take (its own budget, not what is left).
    #[arg(long, default_value = "5m")]
    pub rollback_timeout: humantime::Duration,
    /// How long a new pod may stay in CrashLoopBackOff, ImagePullBackOff,
    /// ErrImagePull or CreateContainerConfigError before the release fails.
    #[arg(long, default_value = "20s")]
    pub failure_grace: humantime::Duration,
    /// On failure, leave the failed release in place (exit 1).
    #[arg(long)]
    pub no_rollback: bool,
    /// Apply without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// The env's name, required for envs marked `protected = true`.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// The current release and, while one runs, its progress.
    Status,
    /// The env's releases, newest first.
    History,
    /// A new release with the tags of an earlier one (default: the one
    /// before the current).
    Undo(UndoArgs),
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The revision whose tags to go back to.
    #[arg(long, value_name = "REV")]
    pub to: Option<u64>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Every `scopectl …` a CI example runs, as words.
    fn invocations(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .filter_map(|l| l.find("scopectl ").map(|i| &l[i..]))
            .filter(|l| !l.starts_with("scopectl in "))
            .map(|l| {
                let end = l.find([';', '|', '>']).unwrap_or(l.len());
                l[..end]
                    .split_whitespace()
                    .map(|w| w.trim_matches('"').to_string())
                    .collect()
            })
            .collect()
    }

    /// Every subcommand (by path) and every long flag it takes, `help` aside.
    fn tree(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let flags = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        out.push((path.to_vec(), flags));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.to_vec();
            p.push(sub.get_name().to_string());
            tree(sub, &p, out);
        }
    }

    #[test]
    fn completions_and_man_pages_cover_every_subcommand_and_flag() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        tree(&cmd, &[], &mut all);
        assert!(all.len() > 15, "{all:?}");

        let bash = String::from_utf8(completions(clap_complete::Shell::Bash)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        man_pages(dir.path()).unwrap();
        let top = String::from_utf8(man_page().unwrap())
            .unwrap()
            .replace("\\-", "-");
        for (path, flags) in &all {
            // One page per subcommand, named by its path; roff escapes `-`.
            let page = std::iter::once("scopectl")
                .chain(path.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("-");
            let man = std::fs::read_to_string(dir.path().join(format!("{page}.1")))
                .unwrap_or_else(|e| panic!("{page}.1: {e}"))
                .replace("\\-", "-");
            // bash: one case arm per subcommand path, whose `opts` lists its flags.
            let arm: String = std::iter::once("scopectl".to_string())
                .chain(
                    path.iter()
                        .map(|p| format!("__subcmd__{}", p.replace('-', "__subcmd__"))),
                )
                .collect();
            let opts = bash
                .split_once(&format!("\n        {arm})\n"))
                .and_then(|(_, rest)| rest.split_once("opts=\""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(opts, _)| format!(" {opts} "))
                .unwrap_or_else(|| panic!("bash lacks the arm {arm})"));
            if let Some(name) = path.last() {
                assert!(man.contains(name.as_str()), "{page}.1 lacks {name}");
            }
            if path.len() == 1 {
                assert!(top.contains(&path[0]), "scopectl.1 lacks {}", path[0]);
            }
            for flag in flags {
                assert!(
                    opts.contains(&format!(" {flag} ")),
                    "bash's {arm} lacks {flag}: {opts}"
                );
                assert!(man.contains(flag.as_str()), "{page}.1 lacks {flag}");
            }
        }
        for shell in [clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let text = String::from_utf8(completions(shell)).unwrap();
            for (path, flags) in &all {
                if let Some(name) = path.last() {
                    assert!(text.contains(name.as_str()), "{shell} lacks {name}");
                }
                for flag in flags {
                    // fish writes `-l dry-run`, zsh `--dry-run`.
                    assert!(text.contains(&flag[2..]), "{shell} lacks {flag}");
                }
            }
        }
        // The walk sees what it must: a nested subcommand and its own flag.
        assert!(all
            .iter()
            .any(|(p, f)| p == &["rollout", "undo"] && f.iter().any(|f| f == "--to")));
        assert!(all
            .iter()
            .any(|(p, f)| p == &["init"] && f.iter().any(|f| f == "--placement")));
    }

    #[test]
    fn the_ci_examples_parse_and_call_only_what_exists() {
        for (name, text) in [
            (
                "github-actions.yml",
                include_str!("../examples/ci/github-actions.yml"),
            ),
            (
                "gitlab-ci.yml",
                include_str!("../examples/ci/gitlab-ci.yml"),
            ),
        ] {
            serde_norway::from_str::<serde_norway::Value>(text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let calls = invocations(text);
            for words in &calls {
                if let Err(e) = Cli::try_parse_from(words) {
                    panic!("{name}: `{}`: {e}", words.join(" "));
                }
            }
            let all = calls
                .iter()
                .map(|w| w.join(" "))
                .collect::<Vec<_>>()
                .join("\n");
            for needed in [
                "plan --env staging --detailed-exitcode",
                "up --env staging --yes",
                "rollout --env staging --all",
                "rollout --env prod --from staging",
            ] {
                assert!(all.contains(needed), "{name} lacks `{needed}`:\n{all}");
            }
        }
        // The check itself catches a flag that does not exist.
        assert!(Cli::try_parse_from(["scopectl", "rollout", "--env", "x", "--promote"]).is_err());
    }
}

/// `--api-server`: an `https://host[:port]` URL and nothing else (it goes
/// into kubeconfig files and the API client as it is).
pub fn api_server_url(s: &str) -> Result<String, String> {
    let bad = || format!("`{s}` is not an https://HOST[:PORT] URL");
    let uri: http::Uri = s.parse().map_err(|_| bad())?;
    let host = uri.host().ok_or_else(bad)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    if uri.scheme_str() != Some("https")
        || !host.chars().all(plain)
        || uri.authority().is_some_and(|a| a.as_str().contains('@'))
        || !matches!(uri.path(), "" | "/")
        || uri.query().is_some()
    {
        return Err(bad());
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod api_server_tests {
    /// Issue 26: `--api-server` goes into kubeconfig files as it is.
    #[test]
    fn api_server_is_an_https_url_and_nothing_else() {
        assert_eq!(
            super::api_server_url("https://127.0.0.1:6443/").unwrap(),
            "https://127.0.0.1:6443"
        );
        assert!(super::api_server_url("https://api.example.com").is_ok());
        for bad in [
            "http://127.0.0.1:6443",
            "https://a b:6443",
            "https://x:6443\nuser: evil",
            "https://u:p@x:6443",
            "https://x:6443/path",
            "127.0.0.1:6443",
        ] {
            assert!(super::api_server_url(bad).is_err(), "{bad}");
        }
    }
}
