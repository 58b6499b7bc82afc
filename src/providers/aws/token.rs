//! The bootstrap token nodes join with: made when instances are launched
//! (or by `pki rotate`), valid for `pki::TOKEN_TTL`; its public half and
//! expiry are in the parameter's description, the cluster phase registers it
//! (`bootstrap-token-<id>` in kube-system) and the first master's kubeadm
//! init does too.

use super::{pki_store, Aws};
use crate::apply::ProviderError;
use crate::model::{Resource, Value};
use crate::pki;

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let token = pki::new_token().map_err(|e| ProviderError::fatal(e.to_string()))?;
    let name = aws.pki_parameter(&r.id);
    let expires = time::OffsetDateTime::now_utc() + pki::TOKEN_TTL;
    let mut facts = pki_store::facts(r, Some(expires));
    let id = token.split_once('.').map(|(id, _)| id).unwrap_or_default();
    facts.insert("token_id".into(), Value::str(id));
    pki_store::put(aws, &r.id, &name, &token, &facts).await?;
    Ok(name)
}

super::kind_ops! {
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        super::pki_store::find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn delete(
        aws: &Aws,
        id: &ResourceId,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        super::pki_store::ensure_ours(aws, id, pid).await?;
        super::pki_store::delete(aws, pid).await
    }
}
