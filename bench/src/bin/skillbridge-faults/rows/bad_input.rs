//! Row 8, bad input from the upstream: malformed frames (not JSON, no type), a binary frame that is not UTF-8, a
//! call whose arguments nest 200 levels deep (its stream signal and its pending row), tool-call signals whose
//! `requestId` is of the wrong kind (object, bool, float, negative, beyond u64), and a frame larger than the
//! stream's frame limit (tungstenite's 16 MiB, which the bridge keeps). Then normal calls: each must be answered
//! exactly once, the bridge must still run, and each bad input must show in its `/metrics`.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::{Measured, counts, exactly_once, no_reruns, wait_for};
use crate::plan::Plan;
use crate::report::Check;
use crate::rig::{Ctx, Rig, RigOptions, TOOL};
use skillbridge_bench::metrics::Metrics;

/// The largest websocket frame the bridge reads: tungstenite's default `max_frame_size`, which the stream's
/// transport (`src/stream/transport.rs`) does not change.
const FRAME_LIMIT: usize = 16 << 20;

/// How long the bad inputs may take to show in `/metrics`.
const COUNTED_TIMEOUT: Duration = Duration::from_secs(20);

/// How deep the deep call's arguments nest (serde_json reads 128 levels).
const DEPTH: usize = 200;

pub fn fault(plan: &Plan) -> String {
    format!(
        "bad input (malformed, oversized, {DEPTH}-deep, not UTF-8, bad requestIds), then {} calls",
        plan.calls_after_bad_input
    )
}

/// One bad input, and the series of `/metrics` that must count it.
struct Expectation {
    input: &'static str,
    series: &'static str,
}

const NOT_JSON: Expectation = Expectation {
    input: "frame not JSON",
    series: "skillbridge_malformed_frames_total{kind=\"not_json\"}",
};
const NO_TYPE: Expectation = Expectation {
    input: "frame without a type",
    series: "skillbridge_malformed_frames_total{kind=\"missing_type\"}",
};
const NOT_UTF8: Expectation = Expectation {
    input: "binary frame, not UTF-8",
    series: "skillbridge_malformed_frames_total{kind=\"not_text\"}",
};
const DEEP_SIGNAL: Expectation = Expectation {
    input: "tool-call signal nested 200 deep",
    series: "skillbridge_malformed_frames_total{kind=\"too_deep\"}",
};
const DEEP_ROW: Expectation = Expectation {
    input: "pending call nested 200 deep",
    series: "skillbridge_unreadable_calls_total",
};
const OVERSIZED: Expectation = Expectation {
    input: "frame over the 16 MiB frame limit",
    series: "skillbridge_reconnects_total",
};

/// Tool-call signals whose `requestId` is of a kind app-server never sends, with the series that must count them.
/// An object or a bool is no request id at all: the signal is unusable. Any JSON number is a JSON-RPC id, so the
/// bridge takes a float, a negative or a huge one as one (`2.5`, `-7`, `1e+30`), runs the call and posts its answer
/// there, where codex-manager refuses it (404): counted as an answer attempt found already answered.
fn bad_request_ids() -> Vec<(&'static str, Value, Expectation)> {
    let unusable = |input| Expectation {
        input,
        series: "skillbridge_unusable_signals_total",
    };
    let refused = |input| Expectation {
        input,
        series: "skillbridge_answer_attempts_total{result=\"already_answered\"}",
    };
    vec![
        ("object", json!({"id": 1}), unusable("requestId an object")),
        ("bool", json!(true), unusable("requestId a bool")),
        ("float", json!(2.5), refused("requestId a float")),
        ("negative", json!(-7), refused("requestId negative")),
        ("huge", json!(1e30), refused("requestId beyond u64")),
    ]
}

/// An `app_server.request.item.tool.call` payload for `echo_call`, answering the call id it carries.
fn tool_call(thread: &str, request_id: Value, call_id: &str) -> Value {
    json!({
        "method": "item/tool/call",
        "requestId": request_id,
        "params": {
            "threadId": thread, "turnId": "turn_bad_input", "callId": call_id, "tool": TOOL,
            "arguments": {"call_id": call_id},
        },
    })
}

/// The series' growth from `before` to `after`.
fn growth(before: &Metrics, after: &Metrics, series: &str) -> f64 {
    after.get(series) - before.get(series)
}

/// Waits until each expected series has grown by as many inputs as expect it; gives up quietly after the timeout
/// (the checks then say what is missing).
async fn wait_counted(rig: &Rig<'_>, before: &Metrics, expected: &[&Expectation]) -> Result<Metrics> {
    let counted = async || {
        let now = rig.metrics().await?;
        let all = expected.iter().all(|e| {
            let wanted = expected.iter().filter(|other| other.series == e.series).count() as f64;
            growth(before, &now, e.series) >= wanted
        });
        Ok(all.then_some(now))
    };
    match wait_for("the bad inputs counted", COUNTED_TIMEOUT, counted).await {
        Ok(metrics) => Ok(metrics),
        Err(_) => rig.metrics().await,
    }
}

pub async fn run(ctx: &Ctx) -> Result<Measured> {
    let plan = &ctx.plan;
    let rig = Rig::start(ctx, "bad-input", RigOptions::default()).await?;
    let double = rig.double();
    let thread = rig.thread().to_owned();
    let before = rig.metrics().await?;

    double.emit_raw_text("{not json").await?;
    double.emit_raw_text(r#"{"threadId":null,"payload":{}}"#).await?;
    double.emit_raw_bytes(&[0xff, 0xfe, b'{', 0x80]).await?;
    double.inject_call(&thread, TOOL, &json!({}), Some(DEPTH)).await?;
    let request_ids = bad_request_ids();
    for (kind, request_id, _) in &request_ids {
        let call = tool_call(&thread, request_id.clone(), &format!("bad_{kind}"));
        double
            .emit_event(&thread, "app_server.request.item.tool.call", &call)
            .await?;
    }
    let mut on_stream = vec![&NOT_JSON, &NO_TYPE, &NOT_UTF8, &DEEP_SIGNAL];
    on_stream.extend(request_ids.iter().map(|(_, _, expectation)| expectation));
    let counted = wait_counted(&rig, &before, &on_stream).await?;

    // Last: a frame over the limit ends the connection, and the listing after the reconnect finds the deep row.
    let oversized = format!(r#"{{"type":"padding","payload":"{}"}}"#, "x".repeat(FRAME_LIMIT));
    double.emit_raw_text(&oversized).await?;
    let after_oversized = wait_counted(&rig, &counted, &[&OVERSIZED]).await?;
    let after_listing = wait_counted(&rig, &before, &[&DEEP_ROW]).await?;

    let burst = rig
        .burst(&json!({}), plan.calls_after_bad_input, plan.calls_after_bad_input)
        .await?;
    let ending = rig.finish().await?;

    let counts = counts(burst.count, burst.answered, 0, &ending);
    let mut checks = vec![exactly_once(&counts), no_reruns(&counts)];
    let mut judge = |expectation: &Expectation, from: &Metrics, to: &Metrics| {
        let grown = growth(from, to, expectation.series);
        checks.push(Check::new(
            format!("counted: {}", expectation.input),
            format!("{} grows", expectation.series),
            format!("+{grown}"),
            grown >= 1.0,
        ));
    };
    for expectation in on_stream {
        judge(expectation, &before, &counted);
    }
    judge(&OVERSIZED, &counted, &after_oversized);
    judge(&DEEP_ROW, &before, &after_listing);
    let notes = vec![format!(
        "after the bad inputs the bridge answered {} calls in {} ms and kept running",
        burst.answered, burst.elapsed_ms
    )];
    Ok(Measured {
        counts,
        calls_per_sec: burst.calls_per_sec,
        ending,
        checks,
        notes,
    })
}
