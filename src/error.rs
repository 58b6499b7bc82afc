//! Exit codes and the `error:` / `Caused by:` / `hint:` rendering.

use crate::config::ConfigError;
use crate::desired::DesiredError;
use crate::providers::aws::state::LockError;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;
pub const EXIT_LOCKED: u8 = 4;
pub const EXIT_USAGE: u8 = 64;

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

/// The exit code for an error anywhere in the chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
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
}
