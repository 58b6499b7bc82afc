//! Exit codes and the `error:` / `Caused by:` / `hint:` rendering.

use crate::apply::{Access, ErrorKind, ProviderError};
use crate::config::{Config, ConfigError};
use crate::desired::DesiredError;
use crate::providers::aws::state::LockError;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;
pub const EXIT_LOCKED: u8 = 4;
pub const EXIT_USAGE: u8 = 64;

/// The command that lists the regions an account can use.
pub const DESCRIBE_REGIONS: &str =
    "aws ec2 describe-regions --query 'Regions[].RegionName' --output text";

/// An error and its sources' messages, `: `-joined, each once: the
/// connection refused under a client's "client error (Connect)", without
/// the Debug dump the AWS SDK's `DisplayErrorContext` adds.
pub fn messages(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !out.ends_with(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        source = s.source();
    }
    out
}

/// An error the user can act on: a message, a hint, and an exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl UserError {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: Some(hint.into()),
            code: EXIT_USAGE,
        }
    }

    pub fn failed(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: Some(hint.into()),
            code: EXIT_ERROR,
        }
    }
}

/// Says in the user's terms why AWS could not be used at all (no
/// credentials, credentials refused, an unknown region), with the next
/// command to run; the original chain stays as the cause. Any other error
/// is returned as it is. `config` (when it loaded) names the region, the
/// profile and where the region is set.
pub fn explain(err: anyhow::Error, config: Option<&Config>) -> anyhow::Error {
    let Some((access, code, cause)) = err.chain().find_map(|c| {
        let p = c.downcast_ref::<ProviderError>()?;
        match p.kind {
            ErrorKind::Access(a) => Some((
                a,
                p.code.clone(),
                p.cause.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
            )),
            _ => None,
        }
    }) else {
        return err;
    };
    let region = config
        .map(|c| c.aws.region.as_str())
        .unwrap_or("its region");
    let profile = config.and_then(|c| c.aws.profile.as_deref());
    let with_profile = |cmd: &str| match profile {
        Some(p) => format!("`{cmd} --profile {p}`"),
        None => format!("`{cmd}`"),
    };
    let whose = match profile {
        Some(p) => format!("of profile `{p}`"),
        None => "from the default chain".to_string(),
    };
    let login = match profile {
        Some(p) => format!("`aws sso login --profile {p}` (SSO) or `aws configure --profile {p}`"),
        None => {
            "`aws configure` (or `aws sso login --profile NAME` with `[aws] profile = \"NAME\"`)"
                .to_string()
        }
    };
    let (message, hint) = match access {
        Access::NoCredentials => (
            format!("no AWS credentials found {whose} for {region}"),
            format!(
                "set them up with {login}, then check them with {}; scopectl reads the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE), ~/.aws, SSO and instance roles, as the AWS CLI does",
                with_profile("aws sts get-caller-identity")
            ),
        ),
        Access::Rejected if code.as_deref().is_some_and(|c| c.starts_with("ExpiredToken")) => (
            format!("the AWS session {whose} has expired ({region})"),
            format!(
                "renew it with {login}, then check it with {}",
                with_profile("aws sts get-caller-identity")
            ),
        ),
        Access::Rejected => (
            format!("AWS rejected the credentials {whose} in {region}"),
            format!(
                "see which credentials are found with {} (AWS_ACCESS_KEY_ID in the environment comes before ~/.aws); fix them with {login}",
                with_profile("aws sts get-caller-identity")
            ),
        ),
        Access::UnknownRegion => {
            let at = config
                .map(|c| format!("`aws.region` at {}", c.aws.region_at))
                .unwrap_or_else(|| "`aws.region`".into());
            let dns = cause.starts_with("dns error");
            (
                if dns {
                    format!("cannot reach AWS in region `{region}`: its endpoint's name does not resolve")
                } else {
                    format!("AWS does not know the region `{region}`")
                },
                format!(
                    "list the regions with `{DESCRIBE_REGIONS}` and fix {at}{}",
                    match (dns, std::env::var("AWS_ENDPOINT_URL")) {
                        (true, Ok(url)) => format!(
                            "; if the region is right, check AWS_ENDPOINT_URL ({url}) and this machine's DNS"
                        ),
                        (true, Err(_)) => {
                            "; if the region is right, check this machine's DNS and network".into()
                        }
                        (false, _) => String::new(),
                    }
                ),
            )
        }
    };
    err.context(UserError::failed(message, hint))
}

/// The exit code for an error anywhere in the chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    // A `UserError` given as context (a chain's head) is found only here.
    if let Some(u) = err.downcast_ref::<UserError>() {
        return u.code;
    }
    for cause in err.chain() {
        if cause.is::<ConfigError>() || cause.is::<DesiredError>() {
            return EXIT_USAGE;
        }
        if let Some(LockError::Held(_)) = cause.downcast_ref::<LockError>() {
            return EXIT_LOCKED;
        }
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return u.code;
        }
    }
    EXIT_ERROR
}

fn hint(err: &anyhow::Error) -> Option<String> {
    if let Some(h) = err.downcast_ref::<UserError>().and_then(|u| u.hint.clone()) {
        return Some(h);
    }
    err.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<ConfigError>() {
            e.hint()
        } else if let Some(e) = c.downcast_ref::<DesiredError>() {
            e.hint.clone()
        } else if let Some(e) = c.downcast_ref::<UserError>() {
            e.hint.clone()
        } else if let Some(LockError::Held(info)) = c.downcast_ref::<LockError>() {
            Some(format!(
                "wait for it to finish; if it is stale (the holder died), break it with `scopectl unlock --env <env> {}`",
                info.id
            ))
        } else if let Some(e) = c.downcast_ref::<crate::apply::ProviderError>() {
            e.hint.clone()
        } else if let Some(LockError::Unreadable { name, .. }) = c.downcast_ref::<LockError>() {
            if let Some(lease) = name.strip_prefix("Lease ") {
                let (ns, lease) = lease.split_once('/').unwrap_or(("kube-system", lease));
                return Some(format!(
                    "another tool may have written it; look at it with `kubectl get lease -n {ns} {lease} -o yaml`, and once no run is in progress delete it with `kubectl delete lease -n {ns} {lease}`"
                ));
            }
            Some(format!(
                "another tool or an older scopectl may have written it; look at it with `aws ssm get-parameter --name {name}`, and once no run is in progress delete it with `aws ssm delete-parameter --name {name}`"
            ))
        } else {
            None
        }
    })
}

/// Renders an error for stderr, uv style.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}\n");
    for c in err.chain() {
        if let Some(snippet) = c
            .downcast_ref::<ConfigError>()
            .and_then(ConfigError::snippet)
        {
            out.push_str(&snippet);
            out.push('\n');
        }
        if let Some(at) = c.downcast_ref::<DesiredError>().and_then(|d| d.at.as_ref()) {
            out.push_str(&format!("  --> {at}\n"));
        }
    }
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        out.push_str("\nCaused by:\n");
        for c in causes {
            out.push_str(&format!("  {c}\n"));
        }
    }
    if let Some(h) = hint(err) {
        out.push_str(&format!("\nhint: {h}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{ErrorKind, Phase, ProviderError};
    use crate::model::{Kind, ResourceId};

    /// A failed step reads: the phase, address and id, what was being done;
    /// the service's answer as the cause; the hint.
    #[test]
    fn a_provider_error_names_its_object_and_keeps_its_cause() {
        let e = ProviderError::new(
            ErrorKind::NotFound,
            Some("InvalidSubnetID.NotFound".into()),
            "ModifySubnetAttribute",
        )
        .caused_by("InvalidSubnetID.NotFound: The subnet ID 'subnet-1' does not exist")
        .doing("setting MapPublicIpOnLaunch")
        .with_hint("run `scopectl up` again")
        .about(
            &ResourceId::new(Kind::Subnet, "nodes-us-east-1a"),
            Some("subnet-1"),
            Phase::Create,
        );
        assert_eq!(
            render(&anyhow::Error::new(e)),
            "error: create ec2/subnet/nodes-us-east-1a (subnet-1): setting MapPublicIpOnLaunch\n\
             \nCaused by:\n  InvalidSubnetID.NotFound: The subnet ID 'subnet-1' does not exist\n\
             \nhint: run `scopectl up` again\n"
        );
    }

    /// Access problems read in the user's terms whichever call met them,
    /// with the call and the service's answer kept as causes.
    #[test]
    fn access_problems_say_what_to_run_next() {
        let refused = ProviderError::new(
            ErrorKind::Access(Access::Rejected),
            Some("AuthFailure".into()),
            "DescribeVpcs",
        )
        .caused_by("AuthFailure: AWS was not able to validate the provided access credentials");
        let e = explain(anyhow::Error::new(refused).context("observing AWS"), None);
        assert_eq!(exit_code(&e), EXIT_ERROR);
        let shown = render(&e);
        assert!(
            shown.starts_with(
                "error: AWS rejected the credentials from the default chain in its region\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "\nCaused by:\n  observing AWS\n  DescribeVpcs\n  AuthFailure: AWS was not able"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "\nhint: see which credentials are found with `aws sts get-caller-identity`"
            ),
            "{shown}"
        );
        let expired = ProviderError::new(
            ErrorKind::Access(Access::Rejected),
            Some("ExpiredToken".into()),
            "GetParameters",
        );
        let shown = render(&explain(anyhow::Error::new(expired), None));
        assert!(
            shown.starts_with("error: the AWS session from the default chain has expired"),
            "{shown}"
        );
        // Anything else passes through untouched.
        let other = anyhow::Error::new(ProviderError::fatal("CreateVpc"));
        assert_eq!(render(&explain(other, None)), "error: CreateVpc\n");
    }
}
