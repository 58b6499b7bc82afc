//! A local env's lock: a `coordination.k8s.io` Lease in `kube-system`, the
//! SSM lock's twin (a local env has no state store). Taken by `create`,
//! which fails on an existing one; the holder's record is an annotation,
//! its id the Lease's `holderIdentity` (what `kubectl get lease` shows).
//! No duration: like the SSM lock it is held until released or broken by
//! `scopectl unlock`, never taken over because time passed.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::{error, retried, K8s};
use crate::apply::{ErrorKind, ProviderError};
use crate::providers::lock::{LockError, LockInfo};

const NAMESPACE: &str = "kube-system";
const RECORD: &str = "scopectl.io/lock";

impl K8s {
    fn lease_name(&self) -> String {
        format!("scopectl-lock-{}-{}", self.owner.project, self.owner.env)
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Takes the lock: creates the Lease, or finds it someone else's.
    pub async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let record =
            serde_json::to_string(info).map_err(|e| ProviderError::fatal(e.to_string()))?;
        let mut lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(info.id.clone()),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        lease.metadata.name = Some(self.lease_name());
        lease.metadata.annotations = Some([(RECORD.to_string(), record)].into());
        lease.metadata.labels = Some(
            crate::model::k8s::owner_labels(&self.owner.project, &self.owner.env)
                .into_iter()
                // Not the plan's: prune must never see the lock.
                .filter(|(k, _)| k != crate::model::k8s::MANAGED_BY)
                .collect(),
        );
        let api = self.leases();
        // Safe to repeat: if an attempt made the Lease and its answer was
        // lost, the next one finds it with our own id.
        let made = retried(|| async {
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(error("creating the lock Lease", e)),
            }
        })
        .await?;
        if made {
            return Ok(());
        }
        match self.read_lock().await? {
            Some(held) if held.id == info.id => Ok(()),
            Some(held) => Err(LockError::Held(Box::new(held))),
            // Released between our two calls: try once more.
            None => Box::pin(self.lock(info)).await,
        }
    }

    async fn lease(&self) -> Result<Option<Lease>, ProviderError> {
        let api = self.leases();
        let name = self.lease_name();
        retried(|| async {
            match api.get(&name).await {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    let e = error("reading the lock Lease", e);
                    if e.kind == ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
            }
        })
        .await
    }

    /// The lock's holder, if any.
    pub async fn read_lock(&self) -> Result<Option<LockInfo>, LockError> {
        let Some(lease) = self.lease().await? else {
            return Ok(None);
        };
        // Never guess at a lock: whoever wrote it may be running.
        let unreadable = |reason: String| LockError::Unreadable {
            name: format!("Lease {NAMESPACE}/{}", self.lease_name()),
            reason,
        };
        let record = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECORD))
            .ok_or_else(|| unreadable(format!("it has no {RECORD} annotation")))?;
        serde_json::from_str(record)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }

    /// Releases the lock if it is still `id`'s; breaks it for `scopectl unlock`.
    pub async fn unlock(&self, id: &str) -> Result<(), LockError> {
        let lease = self.lease().await?.ok_or(LockError::NotLocked)?;
        let current = self.read_lock().await?.ok_or(LockError::NotLocked)?;
        if current.id != id {
            return Err(LockError::Mismatch {
                wanted: id.into(),
                current: current.id,
            });
        }
        // Only the Lease just read: one taken again since is someone else's.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lease.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api = self.leases();
        let name = self.lease_name();
        retried(|| async {
            match api.delete(&name, &params).await {
                Ok(_) => Ok(()),
                // Deleting twice is harmless: an earlier attempt did it.
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                // The uid differs: the Lease was broken and taken again
                // since; that lock is not ours to release.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(error("deleting the lock Lease", e)),
            }
        })
        .await
        .map_err(LockError::from)
    }
}
