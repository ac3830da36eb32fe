//! TLS to codex-manager: the one [`rustls::ClientConfig`] that REST (reqwest) and the websocket stream (tokio-rustls)
//! share, trusting the system's roots plus the private CAs of [`ca_file`](super::ManagerConfigBuilder::ca_file), and
//! [`TlsFailure`]: why a handshake failed, in plain words.

use std::error::Error;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use rustls::{CertificateError, ClientConfig, RootCertStore};

/// The certificates of PEM text, each checked to be one a root store takes. The message says what is wrong.
pub(crate) fn parse_certificates(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|error| format!("is not valid PEM: {error}"))?;
    if certificates.is_empty() {
        return Err("holds no certificate (no -----BEGIN CERTIFICATE----- block)".into());
    }
    let mut check = RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        check
            .add(certificate.clone())
            .map_err(|error| format!("certificate {} is not usable as a CA: {error}", index + 1))?;
    }
    Ok(certificates)
}

/// The client configuration: the system's trusted roots (through the platform verifier) plus `extra_roots`.
pub(crate) fn client_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let no_extra_roots = extra_roots.is_empty();
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, Arc::clone(&provider))
        .map_err(|error| {
            if no_extra_roots {
                format!("no trusted CA certificate was found on this system ({error}); pass codex-manager's CA with --manager-ca")
            } else {
                error.to_string()
            }
        })?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        // The platform verifier is the system's own certificate check; "dangerous" only names the custom hook.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The configuration for a plain `http://` codex-manager: no roots, so that building the HTTP client does not load
/// the system's CA store (reqwest's default configuration would, costing memory and start-up time for nothing).
/// An `https://` request with it fails as untrusted, which a plain URL never makes.
pub(crate) fn plain_http_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// Why a TLS handshake with codex-manager failed, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate chain does not lead to a trusted CA.
    #[error("the server's certificate is not signed by a trusted CA; pass its CA with --manager-ca")]
    UnknownIssuer,
    /// The certificate is not for the host connected to.
    #[error("{}", name_mismatch(.expected, .presented))]
    NameMismatch {
        /// The host connected to (empty when unknown).
        expected: String,
        /// The names the certificate is for.
        presented: Vec<String>,
    },
    /// The certificate has expired.
    #[error("the server's certificate expired{}", .on.as_ref().map(|date| format!(" on {date}")).unwrap_or_default())]
    Expired {
        /// The day it expired (UTC, `YYYY-MM-DD`), when known.
        on: Option<String>,
    },
    /// The certificate is not valid yet.
    #[error("the server's certificate is not valid yet{}", .from.as_ref().map(|date| format!(" (valid from {date})")).unwrap_or_default())]
    NotValidYet {
        /// The day it becomes valid (UTC, `YYYY-MM-DD`), when known.
        from: Option<String>,
    },
    /// Another problem with the server's certificate (revoked, bad signature, wrong purpose, ..).
    #[error("the server's certificate is not acceptable: {0}")]
    Certificate(String),
    /// The server did not answer in TLS, e.g. it serves plain HTTP.
    #[error("the server did not answer in TLS (does it serve plain http://?): {0}")]
    NotTls(String),
    /// Any other handshake failure, e.g. the server refused the handshake.
    #[error("{0}")]
    Handshake(String),
}

impl TlsFailure {
    /// The TLS failure behind `error`, if any: the first [`rustls::Error`] among its sources, also inside the I/O
    /// errors that carry one (whose own `source` skips it).
    pub fn find(error: &(dyn Error + 'static)) -> Option<Self> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(tls) = error.downcast_ref::<rustls::Error>() {
                return Some(Self::from_rustls(tls));
            }
            if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
                && let Some(found) = Self::find(inner)
            {
                return Some(found);
            }
            next = error.source();
        }
        None
    }

    fn from_rustls(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(certificate) => Self::from_certificate(certificate),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                Self::NotTls(error.to_string())
            }
            rustls::Error::AlertReceived(alert) => {
                Self::Handshake(format!("the server refused the handshake ({alert:?})"))
            }
            other => Self::Handshake(other.to_string()),
        }
    }

    fn from_certificate(error: &CertificateError) -> Self {
        match error {
            CertificateError::UnknownIssuer => Self::UnknownIssuer,
            CertificateError::NotValidForName => Self::NameMismatch {
                expected: String::new(),
                presented: Vec::new(),
            },
            CertificateError::NotValidForNameContext { expected, presented } => Self::NameMismatch {
                expected: expected.to_str().into_owned(),
                presented: presented.iter().map(|name| plain_name(name)).collect(),
            },
            CertificateError::Expired => Self::Expired { on: None },
            CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                on: Some(utc_date(not_after.as_secs())),
            },
            CertificateError::NotValidYet => Self::NotValidYet { from: None },
            CertificateError::NotValidYetContext { not_before, .. } => Self::NotValidYet {
                from: Some(utc_date(not_before.as_secs())),
            },
            other => Self::Certificate(rustls::Error::InvalidCertificate(other.clone()).to_string()),
        }
    }
}

/// "the certificate is for a, b, not c", as far as the names are known.
fn name_mismatch(expected: &str, presented: &[String]) -> String {
    let expected = if expected.is_empty() {
        "this server's name"
    } else {
        expected
    };
    if presented.is_empty() {
        format!("the certificate is not for {expected}")
    } else {
        format!("the certificate is for {}, not {expected}", presented.join(", "))
    }
}

/// A name as webpki reports it (`DnsName("example.com")`, `IpAddress(192.0.2.1)`) without the wrapping.
fn plain_name(name: &str) -> String {
    for prefix in ["DnsName(", "IpAddress(", "UniformResourceIdentifier("] {
        if let Some(inner) = name.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(')')) {
            return inner.trim_matches('"').to_owned();
        }
    }
    name.to_owned()
}

/// The UTC day of a Unix time, `YYYY-MM-DD` (the proleptic Gregorian calendar's civil-from-days).
fn utc_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{ServerName, UnixTime};
    use std::time::Duration;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(978_307_199), "2000-12-31");
        assert_eq!(utc_date(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn certificate_errors_read_as_plain_words() {
        let found = |error: rustls::Error| {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
            TlsFailure::find(&io).expect("found inside the I/O error").to_string()
        };
        assert_eq!(
            found(CertificateError::UnknownIssuer.into()),
            "the server's certificate is not signed by a trusted CA; pass its CA with --manager-ca"
        );
        let mismatch = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap(),
            presented: vec![r#"DnsName("example.invalid")"#.into(), "IpAddress(10.0.0.1)".into()],
        };
        assert_eq!(
            found(mismatch.into()),
            "the certificate is for example.invalid, 10.0.0.1, not 127.0.0.1"
        );
        let expired = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_735_689_600)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(978_307_199)),
        };
        assert_eq!(found(expired.into()), "the server's certificate expired on 2000-12-31");
        assert_eq!(
            found(CertificateError::NotValidForName.into()),
            "the certificate is not for this server's name"
        );
        assert!(found(CertificateError::Revoked.into()).starts_with("the server's certificate is not acceptable"));
    }

    #[test]
    fn errors_without_tls_in_them_are_not_tls_failures() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(TlsFailure::find(&refused), None);
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            parse_certificates(key_only)
                .unwrap_err()
                .contains("holds no certificate")
        );
        assert!(parse_certificates(b"").unwrap_err().contains("holds no certificate"));
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(parse_certificates(garbage).is_err());
    }
}
