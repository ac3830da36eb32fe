//! The codex-manager REST client: configuration, typed operations, hooks and a blocking facade.

mod config;

pub use config::{
    Auth, ConfigError, DEFAULT_API_PREFIX, DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ManagerConfig, ManagerConfigBuilder,
    default_profile_path, is_secret_header,
};
