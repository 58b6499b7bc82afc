//! A throwaway PKI shaped like kubeadm's (a `kubernetes` CA, an API server
//! certificate, a `kubernetes-admin` client in `system:masters`), ECDSA
//! P-256: for tests that have no env of their own, and as "another env's
//! CA" whose certificates the server must refuse.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};

pub struct Pki {
    /// The CA certificate.
    pub ca_pem: String,
    /// The API server certificate then its key.
    pub apiserver_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

impl Pki {
    pub fn tls(&self) -> crate::Tls {
        crate::Tls::from_bundles(&self.apiserver_pem, &self.ca_pem)
    }
}

/// A CA, an API server certificate for `sans` (names or addresses) and an
/// admin client certificate.
pub fn generate(sans: &[&str]) -> Result<Pki, rcgen::Error> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "kubernetes");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut server = CertificateParams::new(Vec::<String>::new())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName((*s).try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let admin_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-admin");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    Ok(Pki {
        ca_pem: ca_cert.pem(),
        apiserver_pem: format!("{}{}", server_cert.pem(), server_key.serialize_pem()),
        admin_cert_pem: admin_cert.pem(),
        admin_key_pem: admin_key.serialize_pem(),
    })
}
