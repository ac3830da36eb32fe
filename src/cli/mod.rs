//! The command line: `skills`, `call`, `serve`, `send`.
