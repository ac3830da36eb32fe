//! The admin token: a bearer token compared in constant time. Its value is never logged or shown.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error_body;

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
        let (a, b) = (self.0.expose_secret().as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        .and_then(|v| v.strip_prefix("Bearer "));
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
