//! A leaf certificate and its key, signed by its CA's signing generation.
//! Names known only once things exist (the API load balancer's DNS name, the
//! masters' private addresses and DNS names) are looked up when it is issued.
//! One certificate covers every master, as kubeadm's shared-certificate
//! control-plane join expects: the masters share one PKI from the state store,
//! so each must find its own name and address in the same files.

use super::{classify, pki_store, read_existing, str_list_prop, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Resource, Value};
use crate::pki;

async fn extra_names(aws: &Aws, r: &Resource) -> Result<Vec<String>, ProviderError> {
    let mut names = Vec::new();
    if let Some(lb) = r.props.get("load_balancer").and_then(Value::as_str) {
        let out = read_existing(|| async move {
            aws.elb
                .describe_load_balancers()
                .load_balancer_names(lb)
                .send()
                .await
                .map_err(|e| classify("DescribeLoadBalancers", e))
        })
        .await?;
        names.extend(
            out.load_balancer_descriptions()
                .iter()
                .filter_map(|d| d.dns_name().map(str::to_string)),
        );
    }
    let masters = str_list_prop(&r.props, "masters");
    if !masters.is_empty() {
        let ids = &masters;
        let out = read_existing(|| async move {
            aws.ec2
                .describe_instances()
                .set_instance_ids(Some(ids.clone()))
                .send()
                .await
                .map_err(|e| classify("DescribeInstances", e))
        })
        .await?;
        // kubeadm's control-plane join checks each master's name and
        // address in these certificates (`validateCertificateWithConfig`):
        // the node name is what EC2 calls the instance, its private DNS name.
        names.extend(
            out.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .flat_map(|i| [i.private_ip_address(), i.private_dns_name()])
                .flatten()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        );
    }
    Ok(names)
}

/// What to do about a CA parameter whose value scopectl cannot use.
pub(crate) fn corrupt_ca_hint(name: &str) -> String {
    format!(
        "restore its value from the parameter's history (`aws ssm get-parameter-history --name {name} --with-decryption`); scopectl replaces a CA only in a `scopectl pki rotate --ca` stage"
    )
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let spec = pki::leaf_spec(r.id.name())
        .ok_or_else(|| ProviderError::fatal(format!("{} is not a known certificate", r.id)))?;
    let ca_name = str_prop(&r.props, "ca")?;
    // The CA and the names to sign for are independent reads: at once.
    let (ca_value, extra) =
        futures::try_join!(pki_store::value(aws, &ca_name), extra_names(aws, r))?;
    // A CA that does not parse is an error, never a reason to make a new
    // one (every certificate and kubelet trusts the old).
    let corrupt = |what: &str| {
        ProviderError::fatal(format!("the state store's {ca_name} holds no {what}"))
            .with_hint(corrupt_ca_hint(&ca_name))
    };
    let ca = pki::CaMaterial {
        cert_pem: pki::pem_blocks(&ca_value, "CERTIFICATE")
            .into_iter()
            .next()
            .ok_or_else(|| corrupt("CA certificate"))?,
        key_pem: pki::pem_blocks(&ca_value, "PRIVATE KEY")
            .into_iter()
            .next()
            .ok_or_else(|| corrupt("CA key"))?,
    };
    let mut sans = str_list_prop(&r.props, "sans");
    sans.extend(extra);
    sans.sort();
    sans.dedup();
    let issued = pki::new_leaf(spec, &sans, &ca).map_err(|e| {
        ProviderError::fatal(format!("signing {} with {ca_name}: {e}", r.id))
            .with_hint(corrupt_ca_hint(&ca_name))
    })?;
    let name = aws.pki_parameter(&r.id);
    let value = format!("{}{}", issued.cert_pem, issued.key_pem);
    pki_store::put(
        aws,
        &r.id,
        &name,
        &value,
        &pki_store::facts(r, Some(issued.not_after)),
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
