//! The stored format. A parameter's value is PEM blocks: a leaf is its
//! certificate then its key; a CA is its certificates (the signing one first,
//! then the others still trusted) then their keys in the same order, so
//! `ca.crt` on a master is the whole trust bundle and `ca.key` the first key.

use ::time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::parse_x509_pem;

use super::{CaMaterial, PkiError, NOT_DUE, RENEW_WITHIN_DAYS};

/// The PEM blocks of `label` (`CERTIFICATE`, `PRIVATE KEY`, `PUBLIC KEY`) in order.
pub fn pem_blocks(value: &str, label: &str) -> Vec<String> {
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in value.lines() {
        let line = line.trim_end();
        if line == begin {
            current = Some(String::new());
        }
        if let Some(c) = current.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
        if line == end {
            out.extend(current.take());
        }
    }
    out
}

/// A CA's value from its generations, `(generation, material)`, signing first.
pub fn ca_value(generations: &[(i64, &CaMaterial)]) -> String {
    let mut s = String::new();
    for (_, m) in generations {
        s.push_str(&m.cert_pem);
    }
    for (_, m) in generations {
        s.push_str(&m.key_pem);
    }
    s
}

/// Splits a CA's value back into generations, given their order as stored.
pub fn parse_ca_value(value: &str, order: &[i64]) -> Result<Vec<(i64, CaMaterial)>, PkiError> {
    let certs = pem_blocks(value, "CERTIFICATE");
    let keys = pem_blocks(value, "PRIVATE KEY");
    if certs.len() != order.len() || keys.len() != order.len() {
        return Err(PkiError::Parse(format!(
            "a CA holds {} certificates and {} keys, its description names {} generations",
            certs.len(),
            keys.len(),
            order.len()
        )));
    }
    Ok(order
        .iter()
        .zip(certs.into_iter().zip(keys))
        .map(|(g, (cert_pem, key_pem))| (*g, CaMaterial { cert_pem, key_pem }))
        .collect())
}

/// What `pki status` and the tests read from a certificate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub is_ca: bool,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
}

fn date(t: OffsetDateTime) -> String {
    let f = ::time::format_description::well_known::Rfc3339;
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Parses one PEM certificate.
pub fn read_certificate(pem: &str) -> Result<CertInfo, PkiError> {
    let (_, p) =
        parse_x509_pem(pem.as_bytes()).map_err(|e| PkiError::Parse(format!("PEM: {e}")))?;
    let cert = p
        .parse_x509()
        .map_err(|e| PkiError::Parse(format!("X.509: {e}")))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => sans.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => sans.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                other => sans.push(other.to_string()),
            }
        }
    }
    let mut key_usage = Vec::new();
    if let Ok(Some(ku)) = cert.key_usage() {
        let v = ku.value;
        for (on, name) in [
            (v.digital_signature(), "digital signature"),
            (v.key_encipherment(), "key encipherment"),
            (v.key_cert_sign(), "certificate sign"),
        ] {
            if on {
                key_usage.push(name.to_string());
            }
        }
    }
    let mut extended_key_usage = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if eku.value.server_auth {
            extended_key_usage.push("server auth".to_string());
        }
        if eku.value.client_auth {
            extended_key_usage.push("client auth".to_string());
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: date(cert.validity().not_before.to_datetime()),
        not_after: date(cert.validity().not_after.to_datetime()),
        is_ca: cert.is_ca(),
        key_usage,
        extended_key_usage,
    })
}

/// Whether a leaf expiring at `expires` (RFC 3339) is due at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal(pub String);

/// `not due`, or why a reissue is due: observation turns the stored expiry
/// into this, so the plan stays a pure comparison.
pub fn renewal(expires: Option<&str>, now: OffsetDateTime) -> Renewal {
    let f = ::time::format_description::well_known::Rfc3339;
    match expires.and_then(|e| OffsetDateTime::parse(e, &f).ok()) {
        None => Renewal("due: no recorded expiry".into()),
        Some(t) if t <= now => Renewal(format!("due: expired {}", date(t))),
        Some(t) if t - now <= Duration::days(RENEW_WITHIN_DAYS) => Renewal(format!(
            "due: expires {} (within {RENEW_WITHIN_DAYS} days)",
            date(t)
        )),
        Some(_) => Renewal(NOT_DUE.into()),
    }
}

/// RFC 3339 without fractions, as stored in descriptions.
pub fn rfc3339(t: OffsetDateTime) -> String {
    date(t)
}
