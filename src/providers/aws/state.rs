//! The state store in SSM Parameter Store under `/scopectl/<project>/<env>/`:
//! for now, the env lock.

use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};

use super::{classify, read, Aws};
use crate::apply::{ErrorKind, ProviderError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct LockInfo {
    pub id: String,
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started: String,
    /// Which process this is, beyond its pid (Linux; absent elsewhere and in
    /// locks older than these fields): the kernel's boot id, the pid
    /// namespace, and the process's start time in clock ticks since boot.
    /// A lock is taken over only when all three say its holder is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("env is locked by {} ({} since {}, lock id {})", .0.holder, .0.command, .0.started, .0.id)]
    Held(Box<LockInfo>),
    #[error("no lock with id {wanted} is held (the current lock is {current})")]
    Mismatch { wanted: String, current: String },
    #[error("the env is not locked")]
    NotLocked,
    #[error("the env lock {name} holds a value scopectl cannot read: {reason}")]
    Unreadable { name: String, reason: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl Aws {
    pub fn state_prefix(&self) -> String {
        format!("/scopectl/{}/{}/", self.owner.project, self.owner.env)
    }

    fn lock_name(&self) -> String {
        format!("{}lock", self.state_prefix())
    }

    /// Takes the lock, created atomically: PutParameter without overwrite.
    pub async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let value = serde_json::to_string(info).map_err(|e| ProviderError::fatal(e.to_string()))?;
        let (name, value) = (self.lock_name(), value.as_str());
        // Safe to repeat: if an attempt took the lock and its answer was
        // lost, the next one finds the lock with our own id.
        let result = read(|| async {
            self.ssm
                .put_parameter()
                .name(&name)
                .value(value)
                .r#type(ParameterType::String)
                .overwrite(false)
                .description("scopectl env lock")
                .send()
                .await
                .map_err(|e| classify("PutParameter", e))
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code.as_deref() == Some("ParameterAlreadyExists") => {
                match self.read_lock().await? {
                    Some(held) if held.id == info.id => Ok(()),
                    Some(held) => Err(LockError::Held(Box::new(held))),
                    // Released between our two calls: try once more.
                    None => Box::pin(self.lock(info)).await,
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn read_lock(&self) -> Result<Option<LockInfo>, LockError> {
        let name = self.lock_name();
        let raw = read(|| async {
            match self.ssm.get_parameter().name(&name).send().await {
                Ok(out) => Ok(Some(
                    out.parameter()
                        .and_then(|p| p.value())
                        .unwrap_or_default()
                        .to_string(),
                )),
                Err(e) => {
                    let e = classify("GetParameter", e);
                    if e.kind == ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
            }
        })
        .await?;
        // Never guess at a lock: whoever wrote it may be running.
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|e| LockError::Unreadable {
                name: name.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Releases the lock if it is still `id`'s; breaks it for `scopectl unlock`.
    pub async fn unlock(&self, id: &str) -> Result<(), LockError> {
        let current = self.read_lock().await?.ok_or(LockError::NotLocked)?;
        if current.id != id {
            return Err(LockError::Mismatch {
                wanted: id.into(),
                current: current.id,
            });
        }
        let name = self.lock_name();
        // Deleting twice is harmless: NotFound means an earlier attempt did it.
        let result = read(|| async {
            self.ssm
                .delete_parameter()
                .name(&name)
                .send()
                .await
                .map_err(|e| classify("DeleteParameter", e))
        })
        .await;
        match result {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
