//! Workload W4's client: a program without an async runtime of its own, written against skillbridge's blocking
//! API. It follows the stream with [`StreamClient::run_blocking`] and a [`sync_handler`] for tool calls, runs the
//! trivial skill as an ordinary function, and answers with the blocking [`CodexManager`] facade. Handlers run
//! one frame at a time, so this path answers one call at a time whatever the number outstanding.
//!
//! It prints `ready` after every `ready` frame. Usage: `bench-blocking <base-url> <thread-id>`.

use std::io::Write;
use std::process::ExitCode;

use skillbridge::ToolResult;
use skillbridge::manager::ManagerConfig;
use skillbridge::manager::blocking::CodexManager;
use skillbridge::stream::{AppServerSignal, Frame, Router, StreamClient, StreamOptions, sync_handler};

/// The trivial skill: its input, unchanged.
fn noop(text: String) -> String {
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, thread] = args.as_slice() else {
        eprintln!("usage: bench-blocking <base-url> <thread-id>");
        return ExitCode::from(2);
    };
    let config = match ManagerConfig::builder().base_url(base.as_str()).build() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bench-blocking: {error}");
            return ExitCode::from(2);
        }
    };
    let manager = match CodexManager::new(config.clone()) {
        Ok(manager) => manager,
        Err(error) => {
            eprintln!("bench-blocking: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut router = Router::new();
    router.on_control(sync_handler(|frame: Frame, _ctx| {
        if matches!(frame, Frame::Ready { .. }) {
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
        }
    }));
    router.on_app_server_request(
        "item.tool.call",
        sync_handler(move |signal: AppServerSignal, _ctx| -> Result<(), String> {
            let request_id = signal.request_id.ok_or("tool call without requestId")?;
            let text = signal.params["arguments"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let result = ToolResult::text(noop(text));
            manager
                .respond_tool_call(&request_id, &result)
                .map(|_| ())
                .map_err(|error| error.to_string())
        }),
    );
    match StreamClient::new(config).run_blocking(router, StreamOptions::new().thread_id(thread.as_str())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-blocking: {error}");
            ExitCode::FAILURE
        }
    }
}
