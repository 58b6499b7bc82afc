//! `scopectl kubeconfig`: an admin kubeconfig with a certificate of the
//! user's own, valid `--ttl` (18 h by default, as kops' `export kubeconfig
//! --admin`), signed with the CA from the state store, so a CI job with only
//! AWS credentials can reach the cluster. The certificate is stored nowhere
//! else; the file is written 0600 and never printed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{connect, Ctx};
use crate::cli::KubeconfigArgs;
use crate::desired::load_balancer_name;
use crate::error::{UserError, EXIT_OK};
use crate::pki::{self, KubeconfigParts};
use crate::providers::aws::pki_store;

pub async fn run(ctx: &Ctx, args: KubeconfigArgs) -> Result<u8> {
    let config = ctx.config()?;
    super::require_own_pki(&config, "use the kubeconfig context named in kube_context")?;
    let aws = connect(&config).await;
    let cluster = format!("{}-{}", config.project, config.env);
    let prefix = aws.pki_prefix();
    let (ca, signer) = (format!("{prefix}ca.crt"), format!("{prefix}ca"));
    let values = pki_store::values(&aws, &[ca.clone(), signer.clone()])
        .await
        .context("reading the state store")?;
    let (Some(ca_pem), Some(signer_value)) = (values.get(&ca), values.get(&signer)) else {
        return Err(UserError::failed(
            format!("the state store of {cluster} holds no cluster CA"),
            "run `scopectl up` first",
        )
        .into());
    };
    let ttl: std::time::Duration = *args.ttl;
    if ttl < std::time::Duration::from_secs(60) || ttl > std::time::Duration::from_secs(365 * 86400)
    {
        return Err(UserError::usage(
            format!("--ttl {} is not between a minute and a year", args.ttl),
            "give a duration like 18h or 7d",
        )
        .into());
    }
    let user = args
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "scopectl-user".into());
    // The CA's signing generation is the first certificate and key.
    let signing = pki::CaMaterial {
        cert_pem: pki::pem_blocks(signer_value, "CERTIFICATE")
            .into_iter()
            .next()
            .unwrap_or_default(),
        key_pem: pki::pem_blocks(signer_value, "PRIVATE KEY")
            .into_iter()
            .next()
            .unwrap_or_default(),
    };
    let issued = pki::new_user_cert(
        &user,
        pki::ADMIN_GROUP,
        time::Duration::seconds(ttl.as_secs() as i64),
        &signing,
    )
    .map_err(|e| {
        UserError::failed(
            format!("cannot issue a certificate with the stored CA: {e}"),
            "check the CA with `scopectl pki status`",
        )
    })?;
    let host = match &config.cluster.api_endpoint {
        Some(h) => h.clone(),
        None => {
            let name = load_balancer_name(&cluster, "api");
            aws.load_balancers()
                .await?
                .into_iter()
                .find(|o| o.physical_id == name)
                .and_then(|o| {
                    o.props
                        .get("dns_name")
                        .and_then(|v| v.as_str().map(str::to_string))
                })
                .ok_or_else(|| {
                    UserError::failed(
                        format!("{cluster} has no API load balancer"),
                        "run `scopectl up` first, or set cluster.api_endpoint",
                    )
                })?
        }
    };
    let server = format!("https://{host}:443");
    let parts = KubeconfigParts {
        name: &cluster,
        server: &server,
        ca_pem,
        cert_pem: &issued.cert_pem,
        key_pem: &issued.key_pem,
    };
    let (path, text) = if args.merge {
        let path = merge_target();
        let existing = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let merged = pki::merge_kubeconfig(&existing, &parts).map_err(|e| {
            UserError::failed(
                format!("cannot merge into {}: {e}", path.display()),
                "pass --out FILE to write a separate kubeconfig",
            )
        })?;
        (path, merged)
    } else {
        (
            args.out
                .unwrap_or_else(|| PathBuf::from(format!("{cluster}.kubeconfig"))),
            pki::admin_kubeconfig(&parts),
        )
    };
    write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    ctx.printer.info(&format!(
        "Wrote the admin kubeconfig for {cluster} (server {server}) to {}; context `{cluster}`, user {user} (kubeadm:cluster-admins) until {}.",
        path.display(),
        pki::rfc3339(issued.not_after)
    ));
    Ok(EXIT_OK)
}

/// The file kubectl reads first: `$KUBECONFIG`'s first entry, or ~/.kube/config.
fn merge_target() -> PathBuf {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return first;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".kube").join("config")
}

/// Writes through a 0600 temporary file renamed into place: the key is never
/// readable by others, not even for a moment. The temporary file has a random
/// name and is created exclusively (`O_EXCL`, no symlink followed), so nobody
/// can plant a file or link there beforehand and read or redirect the key.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("kubeconfig");
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut f = builder.tempfile_in(dir)?;
    f.write_all(text.as_bytes())?;
    f.as_file().sync_all()?;
    f.persist(path).map(drop).map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_a_guessable_temporary_name_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        // The names an earlier version used: `.config.tmp-<pid>`.
        let planted = dir
            .path()
            .join(format!(".config.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let target = dir.path().join("config");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();

        write_private(&target, "secret").unwrap();

        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}
