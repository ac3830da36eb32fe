//! Upstreams that deliver tool calls and take answers: codex-manager and `codex app-server`.
