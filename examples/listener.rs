//! A codex-manager listener: REST hooks plus stream handlers, the Rust form of the seed guide's
//! "Minimal async listener".
//!
//! ```sh
//! cargo run --example listener -- <session-id>
//! ```
//! The connection comes from the `CODEX_MANAGER_*` environment variables (default `http://127.0.0.1:3001`).

use skillbridge::manager::CodexManager;
use skillbridge::stream::{Router, StreamOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let session_id = std::env::args().nth(1).ok_or("usage: listener <session-id>")?;
    let mut cm = CodexManager::from_env()?;
    cm.before("sessions.send_message", |call| {
        call.headers
            .insert("x-team", "tools".parse().expect("a valid header value"));
    });
    cm.after("*", |call, response| {
        println!("{} -> {}", call.operation, response.status)
    });

    let mut router = Router::new();
    router.on_app_server("item.started", |signal, _ctx| async move {
        println!("turn {:?}", signal.context.turn_id);
    });
    router.on_app_server_request("item.tool.call", |signal, _ctx| async move {
        println!("tool call request {:?}", signal.request_id);
    });
    router.on_event("transcript_updated", |event, _ctx| async move {
        println!("transcript update {:?}", event.thread_id);
    });

    let stop = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    let report = cm
        .stream()
        .run(router, StreamOptions::new().thread_id(session_id).stop(stop))
        .await?;
    println!("stream stopped after {} reconnects", report.reconnects);
    Ok(())
}
