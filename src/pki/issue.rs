//! Issuing with rcgen: ECDSA P-256 keys (kubeadm's `ECDSA-P256`), kubeadm's
//! key usages, validity backdated five minutes as kubeadm does for clock skew.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::{LeafSpec, PkiError, Usage, CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS};

/// A certificate and its key, PEM. The key never leaves the state store and
/// the process; `Debug` leaves it out.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("not_after", &self.not_after)
            .field("key_pem", &"(sensitive)")
            .finish()
    }
}

/// A CA's signing certificate and key, PEM.
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

fn random<const N: usize>() -> Result<[u8; N], PkiError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| PkiError::Random(e.to_string()))?;
    Ok(b)
}

fn base(
    common_name: &str,
    organization: Option<&str>,
    days: i64,
) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(days);
    let mut serial = random::<16>()?;
    serial[0] &= 0x7f; // positive
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(p)
}

/// A self-signed CA.
pub fn new_ca(common_name: &str) -> Result<Issued, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut p = base(common_name, None, CA_VALIDITY_DAYS)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let not_after = p.not_after;
    let cert = p.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// A leaf signed by `ca`, with `sans` (DNS names or IP addresses).
pub fn new_leaf(spec: &LeafSpec, sans: &[String], ca: &CaMaterial) -> Result<Issued, PkiError> {
    let mut p = base(spec.common_name, spec.organization, LEAF_VALIDITY_DAYS)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = match spec.usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Both => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    p.use_authority_key_identifier_extension = true;
    p.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(s.as_str().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    signed(p, ca)
}

/// `p` with a new key, signed by `ca`.
fn signed(p: CertificateParams, ca: &CaMaterial) -> Result<Issued, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let not_after = p.not_after;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// A person's client certificate for the API, valid `ttl` (signed by the
/// cluster CA): never stored, so it is only as good as its expiry.
pub fn new_user_cert(
    user: &str,
    group: &str,
    ttl: Duration,
    ca: &CaMaterial,
) -> Result<Issued, PkiError> {
    let mut p = base(user, Some(group), 1)?;
    p.not_after = OffsetDateTime::now_utc() + ttl;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    signed(p, ca)
}

/// The service-account key pair: (private PEM, public PEM).
pub fn new_key_pair() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
/// 32 random bytes in base64: an aescbc key for EncryptionConfiguration.
pub fn new_secret_key() -> Result<String, PkiError> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(random::<32>()?))
}

pub fn new_token() -> Result<String, PkiError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // 252 is the largest multiple of 36 below 256: no modulo bias.
    let mut out = String::with_capacity(23);
    while out.len() < 23 {
        for b in random::<32>()? {
            if out.len() == 23 {
                break;
            }
            if b < 252 {
                if out.len() == 6 {
                    out.push('.');
                }
                out.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    Ok(out)
}
