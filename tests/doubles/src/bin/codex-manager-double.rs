//! The codex-manager double as its own process, for benchmarks and non-Rust clients.
//!
//! Prints `listening on http://127.0.0.1:PORT` as its first stdout line, then serves until
//! interrupted. Test controls are under `/_double/`:
//!
//! | route | body / result |
//! |---|---|
//! | `POST /_double/sessions` | `{tools?}` → `{sessionId}` |
//! | `GET /_double/sessions` | `{data:[{id, tools, deleted, messages, active_turn}]}` |
//! | `POST /_double/tool-calls` | `{threadId, tool, arguments, nested?}` → `{requestId, callId}`; `nested: N` adds `"nested": [[..]]` so the arguments nest N levels deep (2 to 1000), deeper than a request body may |
//! | `GET /_double/pending?threadId=` | `{data:[pending row]}` |
//! | `POST /_double/drop-sockets` | → `{dropped}` |
//! | `GET /_double/sockets` | → `{count}` |
//! | `POST /_double/fail-next` | `{n}`: the next n tool-call responses get 500 |
//! | `POST /_double/fail-for` | `{ms}`: every tool-call response gets 500 for ms milliseconds from now (0: stop) |
//! | `POST /_double/delay` | `{ms}`: every REST response is delayed |
//! | `POST /_double/pong` | `{enabled}`: answer pings or not |
//! | `POST /_double/events` | `{threadId?, type, payload}`: emit an envelope |
//! | `POST /_double/raw` | `{text}` or `{bytes:[..]}`: send a raw text frame, or a binary one, to every socket (bodies up to 64 MiB) |
//! | `GET /_double/received` | `{data:[recorded request]}` (secret headers redacted) |
//! | `GET /_double/ws-received` | `{data:[text frames clients sent]}` |
//! | `GET /_double/responses/{requestId}` | `{data:[response bodies]}` |
//! | `POST /_double/turn-script` | `{threadId, toolCalls:[{tool, arguments}], finalMessage?, parallel?}`; `{answers}` in the message is replaced by the answers' texts |
//! | `POST /_double/restart` | `{loseSessions?}` → `{socketsClosed, connectionsCut, callsForgotten, turnsInterrupted, sessionsLost}`: restart as codex-manager does (connections cut but this one, pending calls forgotten, request ids from 0 again; sessions kept unless `loseSessions`) |
//! | `GET /_double/misdelivered` | `{data:[{requestId, expectedCallId, answerText}]}`: with `--check-answer-identity`, accepted answers that do not name their call |
//! | `GET /_double/answered-twice` | `{data:[{callId, answers, ownAnswerAccepted}]}`: with `--check-answer-identity`, calls whose id more than one accepted answer contains |
//! | `POST /_double/burst` | `{threadId, tool, arguments, count, outstanding, timeoutMs?}` → `{count, answered, elapsed_ms, calls_per_sec, latency_us:{p50,p99,max}, timed_out}` |

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use skillbridge_doubles::CodexManagerDouble;

// The allocator of the bridge binaries too. With the system allocator, 50,000 calls held at once fragmented the
// heap so much that the double's own malloc cost a fifth more CPU per call than at 1,000, and the fault suite's load
// row measured that rather than the bridge.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A codex-manager stand-in built from captured fixtures.
#[derive(Parser)]
#[command(name = "codex-manager-double", version)]
struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 3001)]
    port: u16,
    /// Address to listen on. Defaults to 127.0.0.1; giving it explicitly is the only way to
    /// listen on a non-loopback address.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Require `Authorization: Bearer <TOKEN>` on /api requests and the websocket upgrade.
    #[arg(long, env = "CODEX_MANAGER_DOUBLE_BEARER", hide_env_values = true)]
    bearer: Option<String>,
    /// Do not record requests (keeps memory flat during long benchmarks).
    #[arg(long)]
    no_record: bool,
    /// Put each call's id in its arguments (`"call_id"`) and record every accepted answer whose text
    /// lacks it (`GET /_double/misdelivered`).
    #[arg(long)]
    check_answer_identity: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let explicit = args.bind.is_some();
    let ip = args.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut builder = CodexManagerDouble::builder()
        .bind(SocketAddr::new(ip, args.port))
        .allow_non_loopback(explicit)
        .record_requests(!args.no_record)
        .check_answer_identity(args.check_answer_identity);
    if let Some(token) = args.bearer {
        builder = builder.require_bearer(token);
    }
    let double = match builder.start().await {
        Ok(double) => double,
        Err(err) => {
            eprintln!("codex-manager-double: {err}");
            return ExitCode::FAILURE;
        }
    };
    if !ip.is_loopback() {
        eprintln!("codex-manager-double: warning: listening on non-loopback address {ip}");
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "listening on {}", double.base_url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    wait_for_signal().await;
    double.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
