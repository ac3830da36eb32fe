//! Certificates made in the test, for a codex-manager double served over TLS
//! ([`CodexManagerDoubleBuilder::tls`](crate::codex_manager::CodexManagerDoubleBuilder::tls)): a private CA
//! ([`TestCa`]) and the server identities it issues ([`ServerIdentity`]), valid, for other names, or expired.
//!
//! ```
//! use skillbridge_doubles::CodexManagerDouble;
//! use skillbridge_doubles::tls::TestCa;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ca = TestCa::new("test CA");
//! let double = CodexManagerDouble::builder().tls(ca.issue(&["127.0.0.1", "localhost"])).start().await?;
//! assert!(double.base_url().starts_with("https://127.0.0.1:"));
//! // What a `--manager-ca` file holds.
//! assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! # double.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A private certificate authority made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    certificate: rcgen::Certificate,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose certificate's common name is `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("a key pair is generated");
        let certificate = params.self_signed(&key).expect("the CA certificate is signed");
        TestCa {
            issuer: Issuer::new(params, key),
            certificate,
        }
    }

    /// The CA's certificate as PEM, as a `--manager-ca` file holds it.
    pub fn cert_pem(&self) -> String {
        self.certificate.pem()
    }

    /// A server certificate for `names` (host names or IP addresses), valid now, and its key.
    pub fn issue(&self, names: &[&str]) -> ServerIdentity {
        self.issue_with(names, |_| {})
    }

    /// A server certificate for `names` that expired on 2001-01-01.
    pub fn issue_expired(&self, names: &[&str]) -> ServerIdentity {
        self.issue_with(names, |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    fn issue_with(&self, names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> ServerIdentity {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("the names are valid");
        params
            .distinguished_name
            .push(DnType::CommonName, "codex-manager double");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        adjust(&mut params);
        let key = KeyPair::generate().expect("a key pair is generated");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("the server certificate is signed");
        ServerIdentity {
            chain: vec![certificate.der().clone()],
            key: Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der()).into()),
        }
    }
}

/// A server's certificate chain and private key.
#[derive(Clone)]
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// The acceptor that serves this identity.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
