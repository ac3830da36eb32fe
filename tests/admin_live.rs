//! The admin endpoint of a running bridge, over HTTP on 127.0.0.1: readiness follows the stream, and metrics,
//! sessions and recent calls move with real tool calls.

mod bridge_support;

use bridge_support::{WAIT, bridge_for, eventually_async, only_thread, sample, start};
use serde_json::{Value, json};
use skillbridge::admin::AdminToken;
use skillbridge::skill;
use skillbridge_doubles::CodexManagerDouble;

/// Greets someone.
#[skill]
fn greet(
    /// Who to greet.
    name: String,
) -> Result<String, String> {
    if name.is_empty() {
        Err("a name is needed".into())
    } else {
        Ok(format!("hello {name}"))
    }
}

struct Http {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl Http {
    async fn get(&self, path: &str) -> (u16, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, text) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// A started bridge on `double` with its admin endpoint on a free port, guarded by `live-token`.
async fn guarded_bridge(double: &CodexManagerDouble) -> skillbridge::Bridge {
    start(
        bridge_for(double)
            .admin_addr("127.0.0.1:0".parse().unwrap())
            .admin_token(AdminToken::new("live-token").unwrap()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_sessions_and_calls_follow_real_calls() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = guarded_bridge(&double).await;
    let thread = only_thread(&bridge);
    let http = Http {
        base: format!("http://{}", bridge.admin_addr().await.expect("admin endpoint")),
        client: reqwest::Client::new(),
        token: Some("live-token".into()),
    };

    assert_eq!(http.get("/readyz").await.0, 200, "connected with a session");
    assert_eq!(
        http.json("/sessions").await,
        json!([{"id": thread, "upstream": "codex-manager", "created": true, "tools": ["greet"], "lastCallAtMs": null}])
    );
    let before = http.get("/metrics").await.1;
    assert_eq!(
        sample(&before, r#"skillbridge_calls_total{skill="greet",outcome="success"}"#),
        0.0
    );
    assert_eq!(sample(&before, "skillbridge_upstream_connected"), 1.0);

    let ok: Vec<String> = ["ada", "bob"]
        .iter()
        .map(|name| double.inject_tool_call(&thread, "greet", json!({"name": name})))
        .collect();
    let failed = double.inject_tool_call(&thread, "greet", json!({"name": ""}));
    assert!(double.wait_all_answered(WAIT).await);

    let metrics_after = || async { http.get("/metrics").await.1 };
    eventually_async("the calls to show in /metrics", || async {
        let metrics = metrics_after().await;
        sample(&metrics, r#"skillbridge_calls_total{skill="greet",outcome="success"}"#) == 2.0
            && sample(
                &metrics,
                r#"skillbridge_calls_total{skill="greet",outcome="skill_error"}"#,
            ) == 1.0
            && sample(&metrics, r#"skillbridge_answer_attempts_total{result="delivered"}"#) == 3.0
            && sample(&metrics, "skillbridge_calls_in_flight") == 0.0
    })
    .await;
    let metrics = metrics_after().await;
    assert_eq!(
        sample(&metrics, r#"skillbridge_call_duration_seconds_count{skill="greet"}"#),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            r#"skillbridge_call_duration_seconds_bucket{skill="greet",le="+Inf"}"#
        ),
        3.0
    );

    let calls = http.json("/calls?limit=2").await;
    assert_eq!(calls.as_array().unwrap().len(), 2, "limit is applied");
    let calls = http.json("/calls").await;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 3);
    let failed_call = calls
        .iter()
        .find(|c| c["request_id"] == failed.as_str())
        .expect("the failed call");
    assert_eq!(failed_call["outcome"], "skill_error");
    assert_eq!(failed_call["submit_status"], "delivered");
    assert_eq!(failed_call["attempts"], 1);
    assert_eq!(failed_call["session"], thread.as_str());
    assert_eq!(failed_call["tool"], "greet");
    for id in &ok {
        assert!(
            calls
                .iter()
                .any(|c| c["request_id"] == id.as_str() && c["outcome"] == "success")
        );
    }
    let skill = http.json("/skills/greet").await;
    assert_eq!(skill["calls"]["total"], 3);

    // Reconnects show up.
    double.drop_sockets();
    assert!(double.wait_for_sockets(1, WAIT).await);
    eventually_async("a reconnect in /metrics", || async {
        sample(&metrics_after().await, "skillbridge_reconnects_total") >= 1.0
    })
    .await;

    let unauthenticated = Http { token: None, ..http };
    assert_eq!(unauthenticated.get("/metrics").await.0, 401);
    assert_eq!(unauthenticated.get("/healthz").await.0, 200);
    bridge.shutdown().await;
}

/// The next Server-Sent Event of `response`: its name and its JSON data.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> (String, Value) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(|n| n.trim().to_owned());
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(|d| d.trim().to_owned());
            if let (Some(name), Some(data)) = (name, data) {
                return (name, serde_json::from_str(&data).unwrap());
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("an event in time");
        let chunk = chunk.unwrap().expect("the stream is open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_routes_stream_running_and_page_calls() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = guarded_bridge(&double).await;
    let thread = only_thread(&bridge);
    let base = format!("http://{}", bridge.admin_addr().await.expect("admin endpoint"));
    let http = Http {
        base: base.clone(),
        client: reqwest::Client::new(),
        token: Some("live-token".into()),
    };

    // The page needs no token (it holds no data); everything it reads does.
    let page = http.client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(page.text().await.unwrap().contains("<title>skillbridge</title>"));
    let anonymous = http.client.get(format!("{base}/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let mut events = http
        .client
        .get(format!("{base}/events"))
        .bearer_auth("live-token")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();

    double.set_response_delay(std::time::Duration::from_millis(300));
    let held = double.inject_tool_call(&thread, "greet", json!({"name": ""}));
    let (name, started) = next_event(&mut events, &mut buffer).await;
    assert_eq!(
        (name.as_str(), &started["tool"], &started["request_id"]),
        ("started", &json!("greet"), &json!(held))
    );
    let running = http.json("/running").await;
    assert_eq!(
        running[0]["request_id"],
        held.as_str(),
        "running while its answer is held: {running}"
    );
    let (name, finished) = next_event(&mut events, &mut buffer).await;
    assert_eq!(name, "finished");
    assert_eq!(finished["run"], started["run"]);
    assert_eq!(finished["outcome"], "skill_error");
    assert_eq!(finished["error"], "a name is needed");
    assert_eq!(http.json("/running").await, json!([]));
    double.set_response_delay(std::time::Duration::ZERO);

    for name in ["a", "b", "c"] {
        double.inject_tool_call(&thread, "greet", json!({"name": name}));
    }
    assert!(double.wait_all_answered(WAIT).await);
    eventually_async("four calls recorded", || async {
        http.json("/calls").await.as_array().unwrap().len() == 4
    })
    .await;
    let page = http
        .client
        .get(format!("{base}/calls?limit=2&offset=1&outcome=success"))
        .bearer_auth("live-token");
    let page = page.send().await.unwrap();
    assert_eq!(page.headers()["x-total-count"], "3", "three successes in all");
    let page: Value = page.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2, "the second and third newest");
    assert!(
        page.as_array()
            .unwrap()
            .iter()
            .all(|call| call["outcome"] == "success" && call["error"].is_null())
    );
    let latency = &http.json("/skills/greet").await["latency"];
    assert_eq!(latency["count"], 4);
    assert!(latency["p50Ms"].as_f64().unwrap() > 0.0, "{latency}");
    assert_eq!(
        latency["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        4
    );
    let sessions = http.json("/sessions").await;
    assert!(sessions[0]["lastCallAtMs"].as_u64().unwrap() > 0);

    // An open event stream does not hold up the shutdown; it ends.
    tokio::time::timeout(WAIT, bridge.shutdown())
        .await
        .expect("shut down in time");
    let ended = tokio::time::timeout(WAIT, async { while let Ok(Some(_)) = events.chunk().await {} });
    ended.await.expect("the stream ended");
}
