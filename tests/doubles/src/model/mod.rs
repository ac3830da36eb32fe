//! A scripted imitation of the OpenAI Responses API, so the real `codex` binary runs offline in tests.
//!
//! [`ScriptedModel`] answers `POST /v1/responses` with the scripted `function_call`s until the request carries
//! their outputs, then with one assistant message quoting the turn's outputs verbatim; each turn's calls get call
//! ids of their own (`call_<turn>_<index>`), as a real model's do; it records every request so a
//! test can read the `tools` the model was shown and the `function_call_output`s it got back.
//! [`CodexHome`] writes a `CODEX_HOME` that points Codex at it, and [`require_codex`] finds the binary.

mod codex;
mod rewrite;
mod script;
mod server;

pub use codex::{CODEX_BIN_ENV, CODEX_VERSION, CodexHome, SKIP_CODEX_ENV, cached_codex_path, require_codex};
pub use rewrite::codex_rewrite;
pub use script::{ModelScript, ScriptedCall, tool_outputs, turn_outputs};
pub use server::{MODEL_ID, ScriptedModel, WaitTimeout};
