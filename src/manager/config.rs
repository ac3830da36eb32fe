//! Where codex-manager lives, how to authenticate and which CAs to trust: [`ManagerConfig`], built by hand, from the
//! environment, or from a codex-manager CLI profile.

use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::tls;

/// The default codex-manager address.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:3001";
/// The default route prefix.
pub const DEFAULT_API_PREFIX: &str = "/api";
/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable holds something unusable.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The profile file could not be read or parsed.
    #[error("codex-manager profile file {path}: {message}")]
    ProfileFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The profile file has no profile of that name.
    #[error("codex-manager profile {name:?} not found in {path} (known: {known})")]
    UnknownProfile {
        /// The profile asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// The profiles the file has, comma-separated.
        known: String,
    },
    /// The base URL is unusable: not http(s), credentials in it, or a query or fragment.
    #[error("base URL {url} {reason}")]
    BaseUrl {
        /// The URL, [redacted](redact_url): without its credentials.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header name or value is not valid HTTP.
    #[error("header {0:?} is not a valid HTTP header")]
    Header(String),
    /// The CA file cannot be read or holds no usable certificate.
    #[error("codex-manager CA file {}: {message}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The CA certificates given as PEM text hold no usable certificate.
    #[error("codex-manager CA certificates: the PEM text {0}")]
    CaPem(String),
    /// No TLS client configuration could be made, e.g. the system has no trusted CA and none was given.
    #[error("TLS to codex-manager: {0}")]
    Tls(String),
}

/// Where the private CA certificates come from.
#[derive(Clone)]
enum CaSource {
    File(PathBuf),
    Pem(Arc<[u8]>),
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Pem(pem) => write!(f, "<PEM, {} bytes>", pem.len()),
        }
    }
}

/// Authentication sent on every request and on the websocket upgrade. The tokens are secrets: `Debug` redacts
/// them, and reading one takes `expose_secret()`.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<SecretString>,
    /// `x-codex-rbac-token`.
    pub rbac_token: Option<SecretString>,
    /// `x-codex-rbac-role`.
    pub rbac_role: Option<String>,
    /// `x-codex-rbac-actor`.
    pub rbac_actor: Option<String>,
}

/// Where codex-manager is and how to talk to it. `Debug` never shows secrets.
#[derive(Clone)]
pub struct ManagerConfig {
    base_url: String,
    api_prefix: String,
    timeout: Duration,
    auth: Auth,
    extra_headers: BTreeMap<String, String>,
    ca: Option<CaSource>,
    /// Made by [`ManagerConfigBuilder::build`] for an `https://` URL or a CA, shared by REST and the stream.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for ManagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = (self.extra_headers.iter())
            .map(|(name, value)| {
                let shown = if is_secret_header(name) { "<redacted>" } else { value };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("ManagerConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("api_prefix", &self.api_prefix)
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .field("extra_headers", &headers)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_prefix: DEFAULT_API_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            auth: Auth::default(),
            extra_headers: BTreeMap::new(),
            ca: None,
            tls: None,
        }
    }
}

impl ManagerConfig {
    /// A builder starting from the defaults (`http://127.0.0.1:3001`, `/api`, 30 s, no auth).
    pub fn builder() -> ManagerConfigBuilder {
        ManagerConfigBuilder {
            config: Self::default(),
        }
    }

    /// The defaults overridden by `CODEX_MANAGER_*` environment variables that are set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().env_overrides(|name| std::env::var(name).ok())?.build()
    }

    /// The named profile of the codex-manager CLI config file
    /// (`$XDG_CONFIG_HOME/codex-manager/cli/config.json`, default `~/.config/..`).
    pub fn from_profile(name: &str) -> Result<Self, ConfigError> {
        Self::builder()
            .profile_file(&default_profile_path(), Some(name))?
            .build()
    }

    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:3001`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The route prefix, e.g. `/api` (empty when routes sit at the root).
    pub fn api_prefix(&self) -> &str {
        &self.api_prefix
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The authentication settings.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The file of the private CA certificates trusted besides the system's, when one was given
    /// ([`ManagerConfigBuilder::ca_file`]).
    pub fn ca_file(&self) -> Option<&Path> {
        match &self.ca {
            Some(CaSource::File(path)) => Some(path),
            _ => None,
        }
    }

    /// The TLS client configuration REST and the stream share: `Some` for an `https://` base URL or a given CA.
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// The HTTP URL of a route below the prefix: `url("/sessions")` → `http://host/api/sessions`.
    pub fn url(&self, route: &str) -> String {
        format!("{}{}{}", self.base_url, self.api_prefix, route)
    }

    /// The websocket URL of a route below the prefix (`http` → `ws`, `https` → `wss`).
    pub fn ws_url(&self, route: &str) -> String {
        let http = self.url(route);
        match http.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", http.trim_start_matches("http://")),
        }
    }

    /// Every header to send: auth headers and extra profile headers.
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        let mut put = |name: &str, value: &str| {
            // Validated in `build`, so these conversions cannot fail here.
            if let (Ok(n), Ok(mut v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                v.set_sensitive(is_secret_header(name));
                map.insert(n, v);
            }
        };
        for (name, value) in &self.extra_headers {
            put(name, value);
        }
        if let Some(token) = &self.auth.bearer {
            put("authorization", &format!("Bearer {}", token.expose_secret()));
        }
        if let Some(v) = &self.auth.rbac_token {
            put("x-codex-rbac-token", v.expose_secret());
        }
        if let Some(v) = &self.auth.rbac_role {
            put("x-codex-rbac-role", v);
        }
        if let Some(v) = &self.auth.rbac_actor {
            put("x-codex-rbac-actor", v);
        }
        map
    }
}

/// `true` for headers whose values must never be logged: `authorization`, `proxy-authorization`, `cookie`, and any
/// name with `token`, `secret`, `key`, `pass`, `auth`, `sig` or `credential` in it (`x-codex-rbac-token`,
/// `x-api-key`, ..). The same test picks the query parameters [`redact_url`] hides.
pub fn is_secret_header(name: &str) -> bool {
    const SECRET_WORDS: [&str; 9] = [
        "token",
        "secret",
        "key",
        "pass",
        "pwd",
        "auth",
        "cookie",
        "sig",
        "credential",
    ];
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// A URL as it may be logged or shown in an error: credentials (`user:password@`) and the values of query
/// parameters with secret-looking names ([`is_secret_header`]) replaced by `<redacted>`. Works on anything
/// URL-like, a route with a query (`/sessions?token=..`) or text that does not parse as a URL, and borrows when there
/// is nothing to hide.
///
/// ```
/// use skillbridge::manager::redact_url;
///
/// assert_eq!(redact_url("http://bridge:hunter2@cm.internal:3001/api"), "http://<redacted>@cm.internal:3001/api");
/// assert_eq!(
///     redact_url("ws://127.0.0.1:3001/api/stream?threadId=t1&access_token=abc#x"),
///     "ws://127.0.0.1:3001/api/stream?threadId=t1&access_token=<redacted>#x"
/// );
/// assert_eq!(redact_url("http://127.0.0.1:3001"), "http://127.0.0.1:3001");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    const REDACTED: &str = "<redacted>";
    // Where the authority starts: after the scheme, or at the start of text without one (`user:pw@host/..`), but
    // not in a bare route (`/sessions?..`).
    let authority_start = match url.find("://") {
        Some(i) => Some(i + 3),
        None if url.starts_with('/') => None,
        None => Some(0),
    };
    let mut out = String::new();
    let mut copied = 0;
    let mut rest_start = 0;
    if let Some(start) = authority_start {
        let authority_end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
        rest_start = authority_end;
        if let Some(at) = url[start..authority_end].rfind('@') {
            out.push_str(&url[..start]);
            out.push_str(REDACTED);
            copied = start + at;
        }
    }
    // The query and the fragment (where OAuth puts `access_token=`), as `name=value` pairs.
    let hash = url[rest_start..].find('#').map(|i| rest_start + i);
    let query_end = hash.unwrap_or(url.len());
    let parts = [
        url[rest_start..query_end]
            .find('?')
            .map(|i| (rest_start + i + 1, query_end)),
        hash.map(|hash| (hash + 1, url.len())),
    ];
    for (start, end) in parts.into_iter().flatten() {
        let mut pair_start = start;
        for pair in url[start..end].split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && !value.is_empty()
                && is_secret_header(name)
            {
                let value_start = pair_start + name.len() + 1;
                out.push_str(&url[copied..value_start]);
                out.push_str(REDACTED);
                copied = value_start + value.len();
            }
            pair_start += pair.len() + 1;
        }
    }
    if copied == 0 && out.is_empty() {
        return Cow::Borrowed(url);
    }
    out.push_str(&url[copied..]);
    Cow::Owned(out)
}

/// Builds a [`ManagerConfig`]; later calls override earlier ones.
#[derive(Debug, Clone, Default)]
pub struct ManagerConfigBuilder {
    config: ManagerConfig,
}

impl From<ManagerConfig> for ManagerConfigBuilder {
    /// A builder starting from an existing configuration.
    fn from(config: ManagerConfig) -> Self {
        Self { config }
    }
}

impl ManagerConfigBuilder {
    /// The base URL, e.g. `http://127.0.0.1:3001` (a trailing slash is dropped).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// The route prefix, e.g. `/api`; empty for none.
    pub fn api_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let trimmed = prefix.trim_matches('/');
        self.config.api_prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// The per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// A bearer token (`Authorization: Bearer ..`).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.auth.bearer = Some(SecretString::from(token.into()));
        self
    }

    /// The RBAC token, role and actor headers; `None` leaves a field as it is.
    pub fn rbac(mut self, token: Option<String>, role: Option<String>, actor: Option<String>) -> Self {
        let auth = &mut self.config.auth;
        auth.rbac_token = token.map(SecretString::from).or(auth.rbac_token.take());
        auth.rbac_role = role.or(auth.rbac_role.take());
        auth.rbac_actor = actor.or(auth.rbac_actor.take());
        self
    }

    /// Trusts the CA certificates of this PEM file (one or several) besides the system's, for a codex-manager
    /// whose certificate a private CA signed. The file is read by [`build`](Self::build), which fails when it cannot
    /// be read or holds no certificate. Replaces an earlier [`ca_file`](Self::ca_file) or [`ca_pem`](Self::ca_pem).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ca = Some(CaSource::File(path.into()));
        self
    }

    /// Trusts the CA certificates of this PEM text (one or several) besides the system's, as
    /// [`ca_file`](Self::ca_file) does for a file.
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.config.ca = Some(CaSource::Pem(Arc::from(pem.as_ref())));
        self
    }

    /// An extra header sent on every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.extra_headers.insert(name.into(), value.into());
        self
    }

    /// Applies the `CODEX_MANAGER_*` variables that `lookup` finds (pass `|n| std::env::var(n).ok()`).
    pub fn env_overrides(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CODEX_MANAGER_API_BASE") {
            self = self.base_url(v);
        }
        if let Some(v) = get("CODEX_MANAGER_API_PREFIX") {
            self = self.api_prefix(v);
        }
        if let Some(v) = get("CODEX_MANAGER_TIMEOUT_MS") {
            let ms: u64 = v.trim().parse().map_err(|_| ConfigError::Env {
                name: "CODEX_MANAGER_TIMEOUT_MS",
                message: format!("{v:?} is not a whole number of milliseconds"),
            })?;
            self = self.timeout(Duration::from_millis(ms));
        }
        if let Some(v) = get("CODEX_MANAGER_BEARER_TOKEN") {
            self = self.bearer_token(v);
        }
        if let Some(v) = get("CODEX_MANAGER_CA") {
            self = self.ca_file(v);
        }
        Ok(self.rbac(
            get("CODEX_MANAGER_RBAC_TOKEN"),
            get("CODEX_MANAGER_RBAC_ROLE"),
            get("CODEX_MANAGER_RBAC_ACTOR"),
        ))
    }

    /// Applies a profile from a codex-manager CLI config file; `None` takes its `currentProfile`.
    pub fn profile_file(mut self, path: &Path, name: Option<&str>) -> Result<Self, ConfigError> {
        let file_error = |message: String| ConfigError::ProfileFile {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let file: ProfileFile = serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))?;
        let name = match name.map(str::to_owned).or(file.current_profile) {
            Some(name) => name,
            None => return Err(file_error("no profile named and no currentProfile set".into())),
        };
        let Some(profile) = file.profiles.get(&name) else {
            return Err(ConfigError::UnknownProfile {
                name,
                path: path.to_owned(),
                known: file.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        if let Some(v) = &profile.base_url {
            self = self.base_url(v.clone());
        }
        if let Some(v) = &profile.api_prefix {
            self = self.api_prefix(v.clone());
        }
        if let Some(ms) = profile.timeout_ms {
            self = self.timeout(Duration::from_millis(ms));
        }
        for (k, v) in &profile.headers {
            self = self.header(k.clone(), v.clone());
        }
        if let Some(auth) = &profile.auth {
            if let Some(v) = &auth.bearer {
                self = self.bearer_token(v.clone());
            }
            self = self.rbac(auth.rbac_token.clone(), auth.role.clone(), auth.actor.clone());
        }
        Ok(self)
    }

    /// Checks the URL and headers, reads the CA certificates, and returns the configuration; for an `https://` URL
    /// (or a CA) it makes the TLS client configuration that REST and the stream share: the system's trusted roots
    /// plus the given CA.
    ///
    /// A base URL with credentials in it (`http://user:password@host`) is refused: codex-manager authenticates with
    /// a bearer token ([`bearer_token`](Self::bearer_token), `CODEX_MANAGER_BEARER_TOKEN`) or RBAC headers, and a
    /// URL is too easily logged or shown. So is a base URL with a query or fragment, which routes cannot follow.
    pub fn build(self) -> Result<ManagerConfig, ConfigError> {
        let mut config = self.config;
        check_base_url(&config.base_url)?;
        for (name, value) in &config.extra_headers {
            if HeaderName::try_from(name.as_str()).is_err() || HeaderValue::try_from(value.as_str()).is_err() {
                return Err(ConfigError::Header(name.clone()));
            }
        }
        let auth = &config.auth;
        let secrets = [
            auth.bearer.as_ref().map(ExposeSecret::expose_secret),
            auth.rbac_token.as_ref().map(ExposeSecret::expose_secret),
            auth.rbac_role.as_deref(),
            auth.rbac_actor.as_deref(),
        ];
        for (name, value) in [
            "authorization",
            "x-codex-rbac-token",
            "x-codex-rbac-role",
            "x-codex-rbac-actor",
        ]
        .iter()
        .zip(secrets)
        {
            if let Some(v) = value
                && HeaderValue::try_from(v).is_err()
            {
                return Err(ConfigError::Header((*name).to_owned()));
            }
        }
        let extra_roots = match &config.ca {
            None => Vec::new(),
            Some(CaSource::File(path)) => {
                let file_error = |message: String| ConfigError::CaFile {
                    path: path.clone(),
                    message,
                };
                let text = std::fs::read(path).map_err(|e| file_error(format!("cannot be read: {e}")))?;
                tls::parse_certificates(&text).map_err(file_error)?
            }
            Some(CaSource::Pem(pem)) => tls::parse_certificates(pem).map_err(ConfigError::CaPem)?,
        };
        config.tls = if config.base_url.starts_with("https://") || !extra_roots.is_empty() {
            Some(tls::client_config(extra_roots).map_err(ConfigError::Tls)?)
        } else {
            None
        };
        Ok(config)
    }
}

/// Refuses a base URL that is not http(s), carries credentials, or has a query or fragment.
fn check_base_url(url: &str) -> Result<(), ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::BaseUrl {
            url: redact_url(url).into_owned(),
            reason,
        })
    };
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        return refuse("must start with http:// or https://");
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return refuse(
            "must not carry credentials (user:password@): codex-manager takes a bearer token \
             (CODEX_MANAGER_BEARER_TOKEN, --manager-token, or a profile's auth.bearer)",
        );
    }
    if rest.contains(['?', '#']) {
        return refuse("must not have a query or fragment (routes are appended to it)");
    }
    Ok(())
}

/// The codex-manager CLI profile file: `$XDG_CONFIG_HOME/codex-manager/cli/config.json`,
/// falling back to `$HOME/.config/codex-manager/cli/config.json`.
pub fn default_profile_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config"));
    base.join("codex-manager").join("cli").join("config.json")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    current_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    base_url: Option<String>,
    api_prefix: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    auth: Option<ProfileAuth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileAuth {
    bearer: Option<String>,
    rbac_token: Option<String>,
    role: Option<String>,
    actor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults_and_builds_urls() {
        let env = |name: &str| match name {
            "CODEX_MANAGER_API_BASE" => Some("https://cm.example:8443/".to_owned()),
            "CODEX_MANAGER_API_PREFIX" => Some("v2/".to_owned()),
            "CODEX_MANAGER_TIMEOUT_MS" => Some("1500".to_owned()),
            "CODEX_MANAGER_BEARER_TOKEN" => Some("s3cret".to_owned()),
            "CODEX_MANAGER_RBAC_ROLE" => Some("operator".to_owned()),
            _ => None,
        };
        let config = ManagerConfig::builder().env_overrides(env).unwrap().build().unwrap();
        assert_eq!(config.url("/sessions"), "https://cm.example:8443/v2/sessions");
        assert_eq!(
            config.ws_url("/stream?threadId=t"),
            "wss://cm.example:8443/v2/stream?threadId=t"
        );
        assert_eq!(config.timeout(), Duration::from_millis(1500));
        let headers = config.headers();
        assert_eq!(headers["authorization"], "Bearer s3cret");
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["x-codex-rbac-role"], "operator");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn urls_lose_credentials_and_secret_query_values() {
        let cases = [
            ("http://127.0.0.1:3001", "http://127.0.0.1:3001"),
            ("http://u:p@h:1/api", "http://<redacted>@h:1/api"),
            ("https://only-user@h", "https://<redacted>@h"),
            ("http://a@b@h/x@y", "http://<redacted>@h/x@y"),
            ("u:p@h:1/x", "<redacted>@h:1/x"),
            (
                "ws://h/api/stream?threadId=t&token=s3&x=1",
                "ws://h/api/stream?threadId=t&token=<redacted>&x=1",
            ),
            (
                "/sessions?api_key=k&limit=5#top",
                "/sessions?api_key=<redacted>&limit=5#top",
            ),
            ("/sessions?password=&sig", "/sessions?password=&sig"),
            (
                "https://h/cb#access_token=t0k&state=1",
                "https://h/cb#access_token=<redacted>&state=1",
            ),
            ("https://h/cb?a=1#key", "https://h/cb?a=1#key"),
            (
                "http://u:p@h?X-Amz-Signature=abc",
                "http://<redacted>@h?X-Amz-Signature=<redacted>",
            ),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert!(matches!(redact_url("http://h/x?threadId=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn base_urls_with_credentials_query_or_another_scheme_are_refused_without_echoing_secrets() {
        for (url, reason) in [
            ("http://bridge:hunter2@127.0.0.1:3001", "credentials"),
            ("https://hunter2@cm.example", "credentials"),
            ("http://127.0.0.1:3001/?token=hunter2", "query"),
            ("http://127.0.0.1:3001#access_token=hunter2", "query"),
            ("ftp://u:hunter2@h", "http://"),
        ] {
            let err = ManagerConfig::builder().base_url(url).build().unwrap_err();
            let text = err.to_string();
            assert!(text.contains(reason), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
        for url in [
            "http://127.0.0.1:3001",
            "https://cm.example/proxy/",
            "http://[::1]:3001",
        ] {
            assert!(ManagerConfig::builder().base_url(url).build().is_ok(), "{url}");
        }
    }

    #[test]
    fn debug_hides_secret_profile_headers() {
        let config = ManagerConfig::builder()
            .header("x-api-key", "k3y")
            .header("proxy-authorization", "Basic cHc=")
            .header("x-team", "tools")
            .bearer_token("s3cret")
            .build()
            .unwrap();
        let shown = format!("{config:?}");
        for secret in ["k3y", "cHc=", "s3cret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("tools"), "{shown}");
        assert!(config.headers()["x-api-key"].is_sensitive());
    }

    #[test]
    fn bad_timeout_is_a_clear_error() {
        let env = |name: &str| (name == "CODEX_MANAGER_TIMEOUT_MS").then(|| "soon".to_owned());
        let err = ManagerConfig::builder().env_overrides(env).unwrap_err();
        assert!(err.to_string().contains("CODEX_MANAGER_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn a_ca_file_is_read_when_built_and_named_when_unusable() {
        let dir = std::env::temp_dir().join(format!("skillbridge-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = ManagerConfig::builder().ca_file(&missing).build().unwrap_err();
        assert!(
            matches!(&err, ConfigError::CaFile { path, .. } if *path == missing),
            "{err}"
        );
        assert!(err.to_string().contains("cannot be read"), "{err}");

        let key_only = dir.join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let env = |name: &str| (name == "CODEX_MANAGER_CA").then(|| key_only.display().to_string());
        let err = ManagerConfig::builder()
            .env_overrides(env)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "codex-manager CA file {}: holds no certificate",
                key_only.display()
            )),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let plain = ManagerConfig::builder().build().unwrap();
        assert!(plain.tls().is_none() && plain.ca_file().is_none());
        let err = ManagerConfig::builder().ca_pem("no PEM here").build().unwrap_err();
        assert!(matches!(err, ConfigError::CaPem(_)), "{err}");
    }

    #[test]
    fn profile_file_selects_named_or_current_profile() {
        let dir = std::env::temp_dir().join(format!("skillbridge-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            r#"{"currentProfile":"local","profiles":{
                "local":{"baseUrl":"http://127.0.0.1:4000","apiPrefix":"/api","timeoutMs":250,
                         "headers":{"x-team":"tools"},"auth":{"bearer":"tok","rbacToken":"rt","role":"r","actor":"a"}},
                "other":{"baseUrl":"http://127.0.0.1:5000"}}}"#,
        )
        .unwrap();
        let current = ManagerConfig::builder()
            .profile_file(&path, None)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(current.base_url(), "http://127.0.0.1:4000");
        assert_eq!(current.timeout(), Duration::from_millis(250));
        let headers = current.headers();
        assert_eq!(headers["x-team"], "tools");
        assert_eq!(headers["x-codex-rbac-token"], "rt");
        assert_eq!(headers["x-codex-rbac-actor"], "a");
        let other = ManagerConfig::builder()
            .profile_file(&path, Some("other"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(other.base_url(), "http://127.0.0.1:5000");
        let missing = ManagerConfig::builder().profile_file(&path, Some("prod")).unwrap_err();
        assert!(missing.to_string().contains("local, other"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
