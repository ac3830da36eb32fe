//! [`ManagerError`]: every way a codex-manager REST call can fail, with the operation it belongs to.

use http::StatusCode;
use serde_json::Value;

use super::config::ConfigError;
use super::tls::TlsFailure;

/// Why a codex-manager REST call failed.
///
/// Every variant except [`ManagerError::Config`] and [`ManagerError::Runtime`] names the operation
/// (`"sessions.create"`, `"tool_calls.respond"`, ...) so a log line says which call failed.
///
/// For `tool_calls.respond`, codex-manager answers 404 (`{"status":"not_found"}`: unknown or already
/// answered) and 409 (`{"status":"conflict","code":"in_flight"}`: another answer is being delivered).
/// Both come back as [`ManagerError::Status`] with that status; they mean somebody already answered the
/// call, so treat them as done, never as failures to retry ([`ManagerError::is_already_answered`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// codex-manager answered with a status the operation does not expect (anything outside 2xx).
    #[error("{operation}: codex-manager answered {status}: {}", body_excerpt(.body))]
    Status {
        /// The operation, e.g. `"sessions.get"`.
        operation: String,
        /// The HTTP status.
        status: StatusCode,
        /// The response body: its JSON, or the text as a JSON string when it was not JSON
        /// (`Null` when empty).
        body: Value,
    },
    /// The request did not complete: connection refused or reset, timeout, invalid URL, failed TLS handshake. The
    /// message carries the whole cause ("... tcp connect error: Connection refused (os error 111)"), with the URL
    /// [redacted](super::redact_url); a TLS failure is told in plain words instead ("TLS handshake with
    /// codex-manager failed: the certificate is for example.com, not 127.0.0.1"), see [`ManagerError::tls_failure`].
    #[error("{operation}: {}", transport_cause(.source))]
    Transport {
        /// The operation.
        operation: String,
        /// The underlying client error.
        #[source]
        source: reqwest::Error,
    },
    /// A successful response whose body is not what the operation returns.
    #[error("{operation}: unexpected response body: {message}")]
    Decode {
        /// The operation.
        operation: String,
        /// What did not match.
        message: String,
    },
    /// The client configuration is unusable.
    #[error("codex-manager configuration: {0}")]
    Config(#[from] ConfigError),
    /// A `before` hook refused the call (or panicked); the request was not sent.
    #[error("{operation}: hook failed: {message}")]
    Hook {
        /// The operation.
        operation: String,
        /// The hook's message.
        message: String,
    },
    /// The blocking facade could not start or reach its runtime thread.
    #[error("codex-manager blocking client runtime: {message}")]
    Runtime {
        /// What went wrong.
        message: String,
    },
}

impl ManagerError {
    /// The HTTP status, for [`ManagerError::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The operation the error belongs to (empty for configuration and runtime errors).
    pub fn operation(&self) -> &str {
        match self {
            Self::Status { operation, .. }
            | Self::Transport { operation, .. }
            | Self::Decode { operation, .. }
            | Self::Hook { operation, .. } => operation,
            Self::Config(_) | Self::Runtime { .. } => "",
        }
    }

    /// The response body, for [`ManagerError::Status`].
    pub fn body(&self) -> Option<&Value> {
        match self {
            Self::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// `true` when trying again may succeed: a 5xx, 429 or 408 answer, or a transport failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            Self::Transport { source, .. } => !source.is_builder(),
            _ => false,
        }
    }

    /// Why the TLS handshake failed, when that is why the request did not complete.
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        match self {
            Self::Transport { source, .. } => TlsFailure::find(source),
            _ => None,
        }
    }

    /// `true` when the request timed out (the configured per-request timeout elapsed).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport { source, .. } if source.is_timeout())
    }

    /// `true` for a `tool_calls.respond` answered 404 or 409: the call was already answered (or an
    /// answer is in flight), so it is done and must not be retried.
    pub fn is_already_answered(&self) -> bool {
        matches!(
            self,
            Self::Status { operation, status, .. }
                if operation == "tool_calls.respond"
                    && (*status == StatusCode::NOT_FOUND || *status == StatusCode::CONFLICT)
        )
    }
}

impl ManagerError {
    /// Why codex-manager could not be reached, in plain words (`connection refused`, `no answer within 30s`, `the
    /// host name does not resolve: ..`, `TLS handshake failed: the certificate is for .., not ..`), for a
    /// [`Transport`](Self::Transport) error; the full message otherwise.
    pub fn connection_failure(&self) -> String {
        match self {
            Self::Transport { source, .. } if source.is_timeout() => "no answer within the request timeout".to_owned(),
            Self::Transport { source, .. } => connection_failure(source),
            other => other.to_string(),
        }
    }
}

/// The plain cause of a failed connection: a failed TLS handshake ([`TlsFailure`]), the kind of the I/O error in
/// `error`'s chain when there is one, a DNS failure as such, else the whole chain.
pub(crate) fn connection_failure(error: &(dyn std::error::Error + 'static)) -> String {
    use std::io::ErrorKind;
    if let Some(failure) = TlsFailure::find(error) {
        return format!("TLS handshake failed: {failure}");
    }
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    return "the connection was reset".to_owned();
                }
                ErrorKind::TimedOut => return "the connection timed out".to_owned(),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    return format!("the host cannot be reached ({io})");
                }
                _ => {}
            }
        }
        cause = current.source();
    }
    let chain = error_chain(error);
    match chain.find("dns error") {
        Some(at) => format!("the host name does not resolve ({})", &chain[at..]),
        None => chain,
    }
}

/// What went wrong with a request: a failed TLS handshake in plain words, or else the reqwest error with its
/// sources (reqwest's own message stops at "error sending request"; the cause, such as "Connection refused" or "dns
/// error", is further down), its URL redacted.
fn transport_cause(error: &reqwest::Error) -> String {
    if let Some(failure) = TlsFailure::find(error) {
        return format!("TLS handshake with codex-manager failed: {failure}");
    }
    let mut text = format!("request to codex-manager failed: {}", error_chain(error));
    if let Some(url) = error.url()
        && let std::borrow::Cow::Owned(redacted) = super::redact_url(url.as_str())
    {
        text = text.replace(url.as_str(), &redacted);
    }
    text
}

/// An error's message followed by those of its sources, `: `-separated, leaving out a source whose message the text
/// already holds (many errors repeat their source's message in their own).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// The body for an error message: compact JSON, cut to a readable length.
fn body_excerpt(body: &Value) -> String {
    const MAX_CHARS: usize = 300;
    let text = match body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status_error(operation: &str, status: u16) -> ManagerError {
        ManagerError::Status {
            operation: operation.to_owned(),
            status: StatusCode::from_u16(status).unwrap(),
            body: json!({"status": "x"}),
        }
    }

    #[test]
    fn classifies_statuses() {
        assert!(status_error("sessions.get", 500).is_retryable());
        assert!(status_error("sessions.get", 503).is_retryable());
        assert!(status_error("sessions.get", 429).is_retryable());
        assert!(!status_error("sessions.get", 404).is_retryable());
        assert!(!status_error("sessions.get", 400).is_retryable());
        assert!(status_error("tool_calls.respond", 404).is_already_answered());
        assert!(status_error("tool_calls.respond", 409).is_already_answered());
        assert!(!status_error("tool_calls.respond", 500).is_already_answered());
        assert!(!status_error("sessions.delete", 404).is_already_answered());
        assert_eq!(status_error("sessions.get", 410).status(), Some(StatusCode::GONE));
        assert_eq!(status_error("sessions.get", 410).operation(), "sessions.get");
    }

    #[test]
    fn chains_skip_causes_already_told() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Repeats(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Hides(#[source] Repeats);
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(error_chain(&Repeats(refused())), "outer: refused");
        assert_eq!(
            error_chain(&Hides(Repeats(refused()))),
            "connect failed: outer: refused"
        );
    }

    #[tokio::test]
    async fn transport_errors_say_why_and_hide_the_url_secrets() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/sessions?token=hunter2");
        let source = reqwest::Client::new().get(&url).send().await.unwrap_err();
        let error = ManagerError::Transport {
            operation: "sessions.get".into(),
            source,
        };
        let text = error.to_string();
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(!text.contains("hunter2") && text.contains("token=<redacted>"), "{text}");
    }

    #[test]
    fn message_names_operation_status_and_a_cut_body() {
        let err = ManagerError::Status {
            operation: "tool_calls.respond".into(),
            status: StatusCode::CONFLICT,
            body: json!({"status": "conflict", "code": "in_flight", "pad": "x".repeat(1000)}),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("tool_calls.respond: codex-manager answered 409 Conflict"),
            "{text}"
        );
        assert!(text.contains("in_flight"), "{text}");
        assert!(text.len() < 400, "{}", text.len());
    }
}
