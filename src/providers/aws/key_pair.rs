//! The service-account signing key pair (`sa.pub` then `sa.key`), and the
//! key Secrets are encrypted with in etcd.

use super::{pki_store, Aws};
use crate::apply::ProviderError;
use crate::model::Resource;
use crate::pki;

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let name = aws.pki_parameter(&r.id);
    // The etcd encryption key: 32 random bytes, as EncryptionConfiguration
    // takes an aescbc key (base64).
    let value = if r.id.name() == pki::ENCRYPTION_KEY {
        pki::new_secret_key().map_err(|e| ProviderError::fatal(e.to_string()))?
    } else {
        let (private, public) =
            pki::new_key_pair().map_err(|e| ProviderError::fatal(e.to_string()))?;
        format!("{public}{private}")
    };
    pki_store::put(aws, &r.id, &name, &value, &pki_store::facts(r, None)).await?;
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
