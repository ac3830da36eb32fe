//! Test doubles for skillbridge: stand-ins for the upstreams it talks to, built from captured
//! fixtures so their shapes stay real.

pub mod codex_manager;
pub mod model;
pub mod redis;
pub mod tls;

pub use codex_manager::CodexManagerDouble;
