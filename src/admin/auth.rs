//! The admin token: a bearer token compared in constant time. Its value is never logged or shown.
//!
//! The request carries it as `Authorization: Bearer <token>`; the scheme is matched in any case (`bearer`,
//! `BEARER`: RFC 9110 §11.1 makes auth schemes case-insensitive), with any spaces or tabs around the value and
//! between scheme and token.

use std::fmt;

use secrecy::SecretString;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error_body;
use crate::util::bearer_credentials;

/// The secret that admin requests must carry as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct AdminToken(SecretString);

impl AdminToken {
    /// Wraps a token; blank tokens are refused.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.trim().is_empty()).then(|| Self(SecretString::from(token)))
    }

    /// `true` when `presented` equals the token (constant time for equal lengths).
    pub fn matches(&self, presented: &str) -> bool {
        crate::util::secret_matches(&self.0, presented)
    }
}

impl From<SecretString> for AdminToken {
    fn from(token: SecretString) -> Self {
        Self(token)
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Middleware: lets the request through when it carries the token.
pub(super) async fn require_token(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    match presented {
        Some(p) if token.matches(p) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            error_body("missing or wrong admin token (send Authorization: Bearer <token>)"),
        )
            .into_response(),
    }
}
