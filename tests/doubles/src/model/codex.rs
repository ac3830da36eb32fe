//! The real Codex binary for end-to-end tests: where to find it ([`require_codex`]) and an isolated
//! `CODEX_HOME` whose only model provider is a [`ScriptedModel`](super::ScriptedModel) ([`CodexHome`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::server::MODEL_ID;

/// The Codex version the tests and fixtures pin; `scripts/install-codex.sh` installs it.
pub const CODEX_VERSION: &str = "0.169.0";

/// Env var naming the codex binary to test with (overrides the install cache).
pub const CODEX_BIN_ENV: &str = "SKILLBRIDGE_CODEX_BIN";

/// Env var that, set to `1`, makes tests needing the real Codex skip instead of fail.
pub const SKIP_CODEX_ENV: &str = "SKILLBRIDGE_SKIP_CODEX";

/// Where `scripts/install-codex.sh` puts the binary: `<repo>/.cache/codex/<version>/bin/codex`.
pub fn cached_codex_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/codex")
        .join(CODEX_VERSION)
        .join("bin/codex")
}

/// The codex binary for an end-to-end test: `$SKILLBRIDGE_CODEX_BIN`, else the install cache.
///
/// Returns `None` (after printing a loud notice) when `SKILLBRIDGE_SKIP_CODEX=1`; the test should return.
///
/// # Panics
/// When the binary is missing, with a message saying to run `scripts/install-codex.sh`.
pub fn require_codex(test: &str) -> Option<PathBuf> {
    if std::env::var(SKIP_CODEX_ENV).is_ok_and(|value| value == "1") {
        // Written to the real stderr, not through `eprintln!`, which the test harness captures and hides.
        let notice = format!("SKIPPED {test}: {SKIP_CODEX_ENV}=1, the real-Codex test did not run\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
        return None;
    }
    let (path, origin) = match std::env::var_os(CODEX_BIN_ENV) {
        Some(path) => (PathBuf::from(path), CODEX_BIN_ENV.to_owned()),
        None => (cached_codex_path(), "the install cache".to_owned()),
    };
    assert!(
        path.is_file(),
        "{test} needs the real codex {CODEX_VERSION}, not found at {} (from {origin}): run scripts/install-codex.sh \
         (or point {CODEX_BIN_ENV} at a codex binary, or set {SKIP_CODEX_ENV}=1 to skip these tests)",
        path.display()
    );
    Some(path)
}

/// A fresh `CODEX_HOME` directory whose `config.toml` selects the scripted model; removed on drop.
///
/// ```
/// use skillbridge_doubles::model::CodexHome;
///
/// let home = CodexHome::new("http://127.0.0.1:9/v1").unwrap();
/// let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
/// assert!(config.contains(r#"model_provider = "fake""#));
/// assert!(config.contains(r#"base_url = "http://127.0.0.1:9/v1""#));
/// ```
#[derive(Debug)]
pub struct CodexHome {
    dir: PathBuf,
}

impl CodexHome {
    /// Creates the directory under the system temp dir and writes [`CodexHome::config_toml`] for `base_url`.
    pub fn new(base_url: &str) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = loop {
            let candidate = std::env::temp_dir().join(format!(
                "skillbridge-codex-home-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        };
        let home = Self { dir };
        std::fs::write(home.dir.join("config.toml"), Self::config_toml(base_url))?;
        Ok(home)
    }

    /// The directory; pass it as `CODEX_HOME`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A configuration whose only provider, `fake`, is the Responses API at `base_url`.
    pub fn config_toml(base_url: &str) -> String {
        format!(
            "model = \"{MODEL_ID}\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\n\
             base_url = \"{base_url}\"\nwire_api = \"responses\"\n"
        )
    }
}

impl Drop for CodexHome {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "could not remove the test CODEX_HOME");
        }
    }
}
