//! codex-manager over TLS: REST and the websocket stream against the double served with a certificate made here,
//! trusted through the CA given to the client; and each way the server's certificate can be wrong, told in plain
//! words by both.

use std::time::Duration;

use http::HeaderMap;
use skillbridge::manager::{CodexManager, CreateSession, ManagerConfig, ManagerError, TlsFailure};
use skillbridge::stream::{ConnectError, ConnectRequest, Connector, WsConnector};
use skillbridge::upstream::UpstreamError;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::tls::{ServerIdentity, TestCa};

const WAIT: Duration = Duration::from_secs(10);

async fn double_with(identity: ServerIdentity) -> CodexManagerDouble {
    CodexManagerDouble::builder().tls(identity).start().await.unwrap()
}

/// A client trusting `ca` besides the system's CAs.
fn config(double: &CodexManagerDouble, ca: &TestCa) -> ManagerConfig {
    ManagerConfig::builder()
        .base_url(double.base_url())
        .ca_pem(ca.cert_pem())
        .build()
        .unwrap()
}

/// The REST failure and the stream's, for a client with `config`.
async fn both_failures(config: ManagerConfig) -> (ManagerError, ConnectError) {
    let rest = CodexManager::new(config.clone())
        .unwrap()
        .create_session(&CreateSession::new())
        .await
        .unwrap_err();
    let stream = WsConnector::for_manager(&config)
        .connect(ConnectRequest {
            url: config.ws_url("/stream"),
            headers: HeaderMap::new(),
            thread_id: None,
        })
        .await
        .unwrap_err();
    (rest, stream)
}

#[tokio::test]
async fn rest_and_the_stream_work_over_tls_with_the_private_ca() {
    let ca = TestCa::new("skillbridge test CA");
    let double = double_with(ca.issue(&["127.0.0.1", "localhost"])).await;
    assert!(double.base_url().starts_with("https://"));
    let config = config(&double, &ca);

    let cm = CodexManager::new(config.clone()).unwrap();
    let created = cm.create_session(&CreateSession::new()).await.unwrap();
    assert_eq!(double.sessions().len(), 1);
    cm.get_session(&created.session_id).await.unwrap();

    assert!(config.ws_url("/stream").starts_with("wss://"));
    let connection = WsConnector::for_manager(&config)
        .connect(ConnectRequest {
            url: config.ws_url("/stream"),
            headers: HeaderMap::new(),
            thread_id: None,
        })
        .await
        .unwrap();
    assert!(double.wait_for_sockets(1, WAIT).await, "the wss:// stream is connected");
    drop(connection);
    double.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_says_to_pass_the_ca() {
    let trusted = TestCa::new("trusted CA");
    let other = TestCa::new("some other CA");
    let double = double_with(other.issue(&["127.0.0.1"])).await;
    let (rest, stream) = both_failures(config(&double, &trusted)).await;

    assert_eq!(rest.tls_failure(), Some(TlsFailure::UnknownIssuer));
    assert_eq!(
        rest.to_string(),
        "sessions.create: TLS handshake with codex-manager failed: the server's certificate is not signed by a \
         trusted CA; pass its CA with --manager-ca"
    );
    assert_eq!(
        stream.to_string(),
        format!(
            "TLS handshake with {} failed: the server's certificate is not signed by a trusted CA; pass its CA with \
             --manager-ca",
            double.ws_url()
        )
    );
    assert!(
        !stream.is_fatal(),
        "a certificate can be replaced: the stream keeps trying"
    );
    assert_eq!(double.sessions().len(), 0);

    // At start-up there is no point waiting for it, as there is for a codex-manager not listening yet.
    let unreachable = UpstreamError::Unreachable {
        url: double.base_url(),
        source: rest,
    };
    assert!(!unreachable.is_transient());
    assert_eq!(
        unreachable.to_string(),
        format!(
            "cannot reach codex-manager at {}: TLS handshake failed: the server's certificate is not signed by a \
             trusted CA; pass its CA with --manager-ca",
            double.base_url()
        )
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_names_both() {
    let ca = TestCa::new("skillbridge test CA");
    let double = double_with(ca.issue(&["example.invalid"])).await;
    let (rest, stream) = both_failures(config(&double, &ca)).await;
    let mismatch = "the certificate is for example.invalid, not 127.0.0.1";
    assert!(rest.to_string().ends_with(mismatch), "{rest}");
    assert!(
        matches!(
            &stream,
            ConnectError::Tls {
                failure: TlsFailure::NameMismatch { .. },
                ..
            }
        ),
        "{stream:?}"
    );
    assert!(stream.to_string().ends_with(mismatch), "{stream}");
}

#[tokio::test]
async fn an_expired_certificate_says_when_it_expired() {
    let ca = TestCa::new("skillbridge test CA");
    let double = double_with(ca.issue_expired(&["127.0.0.1"])).await;
    let (rest, stream) = both_failures(config(&double, &ca)).await;
    let expired = "the server's certificate expired on 2001-01-01";
    assert!(rest.to_string().ends_with(expired), "{rest}");
    assert!(stream.to_string().ends_with(expired), "{stream}");
}

#[tokio::test]
async fn https_to_a_plain_http_server_says_it_does_not_answer_in_tls() {
    let double = CodexManagerDouble::start().await.unwrap();
    let url = double.base_url().replace("http://", "https://");
    let config = ManagerConfig::builder().base_url(url).build().unwrap();
    let (rest, stream) = both_failures(config).await;
    assert!(matches!(rest.tls_failure(), Some(TlsFailure::NotTls(_))), "{rest}");
    assert!(
        rest.to_string()
            .contains("the server did not answer in TLS (does it serve plain http://?)"),
        "{rest}"
    );
    assert!(stream.to_string().contains("did not answer in TLS"), "{stream}");
}
