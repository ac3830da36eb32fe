//! The codex-manager websocket stream: frames, app-server signals, the handler router and the connection loop.
