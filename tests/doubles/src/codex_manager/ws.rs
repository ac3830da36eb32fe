//! The websocket `GET /api/stream[?threadId=]`: sends `ready` on connect, answers `subscribe`,
//! `unsubscribe` and `ping`, rejects anything else with the `invalid websocket command` error,
//! and forwards the hub's frames. A killed socket is dropped without a close handshake, like a
//! server that went away.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as Extract};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::fixtures;
use super::hub::Membership;
use super::state::State;

/// How many queued frames are written before one flush.
const WRITE_BATCH: usize = 64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamQuery {
    thread_id: Option<String>,
}

/// Joins the hub before answering the upgrade, so a client that has connected is already counted
/// and receives every frame published after its `ready`.
pub(crate) async fn upgrade(
    Extract(state): Extract<Arc<State>>,
    Query(query): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let filter = query.thread_id.filter(|t| !t.is_empty());
    let membership = state.hub.join(filter.as_deref().map(Arc::from));
    upgrade.on_upgrade(move |socket| serve(socket, state, membership, filter))
}

enum Command {
    Subscribe(String),
    Unsubscribe,
    Ping,
    Invalid,
}

fn parse_command(text: &str) -> Command {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Command::Invalid;
    };
    match value.get("type").and_then(Value::as_str) {
        Some("ping") => Command::Ping,
        Some("unsubscribe") => Command::Unsubscribe,
        Some("subscribe") => match value.get("threadId").and_then(Value::as_str) {
            Some(thread) if !thread.is_empty() => Command::Subscribe(thread.to_owned()),
            _ => Command::Invalid,
        },
        _ => Command::Invalid,
    }
}

async fn serve(socket: WebSocket, state: Arc<State>, mut membership: Membership, filter: Option<String>) {
    let (mut sink, mut incoming) = socket.split();
    let ready = Message::Text(fixtures::ready_text(filter.as_deref()).into());
    if sink.send(ready).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = membership.kill.cancelled() => return,
            frame = membership.frames.recv() => {
                let Some(frame) = frame else { return };
                if write_batch(&mut sink, &mut membership, frame).await.is_err() {
                    return;
                }
            }
            message = incoming.next() => {
                let reply = match message {
                    Some(Ok(Message::Text(text))) => {
                        state.record_ws_text(text.as_str());
                        command_reply(&state, &membership, text.as_str())
                    }
                    Some(Ok(Message::Binary(_))) => Some(fixtures::INVALID_COMMAND.as_str()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                if let Some(reply) = reply
                    && sink.send(Message::Text(Utf8Bytes::from(reply))).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Applies a client command; returns the reply frame, if any.
fn command_reply(state: &State, membership: &Membership, text: &str) -> Option<&'static str> {
    match parse_command(text) {
        Command::Subscribe(thread) => {
            state.hub.set_filter(membership.id, Some(Arc::from(thread)));
            None
        }
        Command::Unsubscribe => {
            state.hub.set_filter(membership.id, None);
            None
        }
        Command::Ping => state.pong_enabled().then(|| fixtures::PONG.as_str()),
        Command::Invalid => Some(fixtures::INVALID_COMMAND.as_str()),
    }
}

/// Writes `first` and whatever else is already queued, then flushes once.
async fn write_batch(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    membership: &mut Membership,
    first: Message,
) -> Result<(), axum::Error> {
    sink.feed(first).await?;
    for _ in 1..WRITE_BATCH {
        match membership.frames.try_recv() {
            Ok(frame) => sink.feed(frame).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}
