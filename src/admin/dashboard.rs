//! The dashboard: `GET /` serves one self-contained page (`dashboard.html`: HTML, CSS and script embedded in the
//! binary, nothing fetched from elsewhere), which reads the other admin routes with the operator's token;
//! `GET /running` lists the calls running now and `GET /events` streams calls starting and finishing as
//! Server-Sent Events, so the page updates live.
//!
//! The page itself carries no data, so it is served without the token (a browser cannot send a header when it
//! navigates); it asks for the token, keeps it in `sessionStorage` and sends it as `Authorization: Bearer` on each
//! request it makes, never in a URL. That is also why it reads `/events` with `fetch` rather than `EventSource`,
//! which cannot send headers.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{AdminState, error_body};
use crate::telemetry::{BridgeStats, DURATION_BUCKETS, StatsEvent};

/// `/events` streams open at once, at most: a few operators' tabs, not a fan-out service.
pub(super) const MAX_WATCHERS: usize = 16;

const PAGE: &str = include_str!("dashboard.html");

pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything the page needs is in it: refuse anything from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
                 img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// The calls running now, oldest first: `[{run, request_id, tool, session, started_at_ms}]`.
pub(super) async fn running(State(state): State<AdminState>) -> Response {
    let running: Vec<Value> = state
        .stats
        .running()
        .into_iter()
        .map(|(run, call)| {
            let mut listed = json!(call);
            listed["run"] = json!(run);
            listed
        })
        .collect();
    axum::Json(Value::Array(running)).into_response()
}

/// `started` and `finished` events (the JSON of [`StatsEvent`]) until the client goes away or the server shuts
/// down; `lagged` with the number of events missed when the client fell too far behind (it should re-read
/// `/running` and `/calls`).
pub(super) async fn events(State(state): State<AdminState>) -> Response {
    let Ok(watcher) = std::sync::Arc::clone(&state.watchers).try_acquire_owned() else {
        let message = format!("{MAX_WATCHERS} dashboards are watching already; close one, or poll /running and /calls");
        return (StatusCode::SERVICE_UNAVAILABLE, error_body(message)).into_response();
    };
    let receiver = state.stats.subscribe();
    let events = futures::stream::unfold((receiver, watcher), |(mut receiver, watcher)| async move {
        let event = match receiver.recv().await {
            Ok(event) => {
                let name = match &event {
                    StatsEvent::Started { .. } => "started",
                    StatsEvent::Finished { .. } => "finished",
                };
                Event::default().event(name).json_data(&event).ok()?
            }
            Err(RecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(event), (receiver, watcher)))
    });
    let events = events.take_until(state.closing.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// A skill's latency for the dashboard: p50/p95/p99 in milliseconds (the upper bound of the bucket each falls
/// in; `null` before any call, a string `">60000"` past the last bucket) and the histogram's buckets as
/// `[{leMs, count}]`, not cumulative.
pub(super) fn latency(stats: &BridgeStats, skill: &str) -> Value {
    let Some(histogram) = stats.durations_of(skill) else {
        return json!({"count": 0, "p50Ms": null, "p95Ms": null, "p99Ms": null, "buckets": []});
    };
    let millis = |q: f64| match histogram.quantile(q) {
        None => Value::Null,
        Some(seconds) if seconds.is_infinite() => {
            json!(format!(">{}", DURATION_BUCKETS[DURATION_BUCKETS.len() - 1] * 1000.0))
        }
        Some(seconds) => json!(seconds * 1000.0),
    };
    let mut previous = 0;
    let mut buckets: Vec<Value> = DURATION_BUCKETS
        .iter()
        .zip(&histogram.buckets)
        .map(|(bound, &cumulative)| {
            let count = cumulative - previous;
            previous = cumulative;
            json!({"leMs": bound * 1000.0, "count": count})
        })
        .collect();
    buckets.push(json!({"leMs": null, "count": histogram.count - previous}));
    json!({
        "count": histogram.count,
        "p50Ms": millis(0.5),
        "p95Ms": millis(0.95),
        "p99Ms": millis(0.99),
        "buckets": buckets,
    })
}
