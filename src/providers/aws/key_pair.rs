//! The service-account signing key pair: `sa.pub` then `sa.key`.

use super::{pki_store, Aws};
use crate::apply::ProviderError;
use crate::model::Resource;
use crate::pki;

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let (private, public) = pki::new_key_pair().map_err(|e| ProviderError::fatal(e.to_string()))?;
    let name = aws.pki_parameter(&r.id);
    pki_store::put(
        aws,
        &r.id,
        &name,
        &format!("{public}{private}"),
        &pki_store::facts(r, None),
    )
    .await?;
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
