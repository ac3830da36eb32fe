//! `skillbridge mcp` through the binary, driven by the official Rust SDK's client (rmcp).
//!
//! On stdio, as an MCP client starts it (Codex's `[mcp_servers.NAME] command = ..., args = ["mcp"]`): the shipped
//! skills listed with their hints and output schemas, a call of each kind (text, typed JSON, image, failure, bad
//! arguments, an unknown tool), a burst of 100 concurrent calls, a runaway SQL query stopped by the client's
//! cancellation, stdout carrying only protocol messages (the client would choke on anything else). Over HTTP (`--http`): its address and the admin endpoint's on stdout, a token
//! required, calls counted by the admin endpoint. And `--help`.

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

async fn start(args: &[&str]) -> RunningService<RoleClient, ()> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skillbridge"));
    command
        .arg("mcp")
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("SKILLBRIDGE_CONFIG");
    let transport = TokioChildProcess::new(command).expect("skillbridge mcp starts");
    ().serve(transport).await.expect("the client initializes")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, arguments: Value) -> Value {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let result: CallToolResult = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool}: {error}"));
    serde_json::to_value(result).unwrap()
}

#[tokio::test]
async fn the_shipped_skills_answer_an_mcp_client_on_stdio() {
    // RUST_LOG=debug: every log line goes to stderr, or the client would fail on the first one.
    let client = start(&[]).await;
    let info = client.peer_info().expect("the server introduced itself");
    assert_eq!(
        info.server_info.as_ref().map(|server| server.name.as_str()),
        Some("skillbridge")
    );

    let tools = serde_json::to_value(client.list_all_tools().await.unwrap()).unwrap();
    let tool = |name: &str| {
        tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap()
    };
    let lookup = tool("ticket_lookup");
    assert_eq!(lookup["title"], "Look up a ticket");
    assert_eq!(lookup["annotations"]["readOnlyHint"], true);
    assert_eq!(lookup["annotations"]["openWorldHint"], false);
    assert_eq!(lookup["inputSchema"]["required"], json!(["ticket_id"]));
    assert!(lookup["outputSchema"]["properties"].is_object(), "typed JSON: {lookup}");
    assert!(tool("word_count")["outputSchema"].is_object());
    assert!(tool("slugify").get("outputSchema").is_none(), "text has none");

    let slug = call(&client, "slugify", json!({"text": "Hello MCP World"})).await;
    assert_eq!(slug["content"][0]["text"], "hello-mcp-world");

    let ticket = call(&client, "ticket_lookup", json!({"ticket_id": "T-1001"})).await;
    assert_eq!(ticket["structuredContent"]["id"], "T-1001");
    let text: Value = serde_json::from_str(ticket["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        text, ticket["structuredContent"],
        "the same JSON as text, for clients that read text"
    );

    let chart = call(
        &client,
        "bar_chart",
        json!({"title": "Open", "labels": ["a", "b"], "values": [1, 2]}),
    )
    .await;
    let kinds: Vec<&str> = chart["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"image"), "{chart}");
    let image = chart["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "image")
        .unwrap();
    assert_eq!(image["mimeType"], "image/png");

    let missing = call(&client, "ticket_lookup", json!({"ticket_id": "T-9"})).await;
    assert_eq!(missing["isError"], true, "{missing}");

    let refused = call(&client, "slugify", json!({"text": "x", "separator": "~~~~"})).await;
    assert_eq!(refused["isError"], true);
    assert!(
        refused["content"][0]["text"].as_str().unwrap().contains("separator"),
        "{refused}"
    );

    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_skill"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("no tool named \"no_such_skill\""),
        "a protocol error: {unknown}"
    );

    // A burst of 100 concurrent calls on one stdio connection, each answered with its own result.
    let client = std::sync::Arc::new(client);
    let calls = (0..100).map(|i| {
        let client = std::sync::Arc::clone(&client);
        tokio::spawn(async move { (i, call(&client, "uppercase", json!({"text": format!("n{i}")})).await) })
    });
    for answered in futures::future::join_all(calls).await {
        let (i, answer) = answered.unwrap();
        assert_eq!(answer["content"][0]["text"], format!("N{i}"));
    }
    let client = std::sync::Arc::into_inner(client).expect("the calls are done");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_toolset_narrows_what_the_client_sees() {
    for (flags, expected) in [
        (&["--tools", "tickets"][..], &["ticket_lookup", "ticket_search"][..]),
        (
            &["--tools", "text,notes", "--exclude-tools", "slugify", "--read-only"],
            &["note_read", "uppercase", "word_count"],
        ),
    ] {
        let client = start(flags).await;
        let mut names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        assert_eq!(names, expected, "{flags:?}");
        client.cancel().await.unwrap();
    }
}

#[test]
fn help_explains_the_transports_and_how_codex_starts_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(["mcp", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--http",
        "--token",
        "--tools",
        "--read-only",
        "[mcp_servers.",
        "stdout carries only",
    ] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args(["mcp", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token"));
}

#[tokio::test]
async fn over_http_it_says_where_it_listens_needs_its_token_and_counts_calls_on_the_admin_endpoint() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .args([
            "mcp",
            "--http",
            "127.0.0.1:0",
            "--token",
            "mcp-s3cret",
            "--admin",
            "127.0.0.1:0",
        ])
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("mcp prints where it listens")
    };
    let mcp = next().await.strip_prefix("mcp ").expect("mcp URL first").to_owned();
    let admin = next()
        .await
        .strip_prefix("admin ")
        .expect("then the admin endpoint")
        .to_owned();
    assert!(mcp.starts_with("http://127.0.0.1:") && mcp.ends_with("/mcp"), "{mcp}");

    let without = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(mcp.as_str()),
    );
    assert!(().serve(without).await.is_err(), "no token, no session");
    let with = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(mcp.as_str()).auth_header("mcp-s3cret"),
    );
    let client = ().serve(with).await.expect("the client initializes");
    let upper = call(&client, "uppercase", json!({"text": "over http"})).await;
    assert_eq!(upper["content"][0]["text"], "OVER HTTP");
    client.cancel().await.unwrap();

    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"skillbridge_calls_total{skill="uppercase",outcome="success"} 1"#),
        "{metrics}"
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[tokio::test]
async fn on_stdio_stdout_carries_only_protocol_and_closing_stdin_ends_it_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = Command::new(env!("CARGO_BIN_EXE_skillbridge"))
        .arg("mcp")
        .env("RUST_LOG", "debug")
        .env_remove("SKILLBRIDGE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "codex-mcp-client", "version": "0.169.0"}}});
    stdin.write_all(format!("{initialize}\n").as_bytes()).await.unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    stdin.write_all(format!("{initialized}\n").as_bytes()).await.unwrap();
    drop(stdin);
    let mut stdout = String::new();
    server.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .unwrap()
        .unwrap();
    let mut stderr = String::new();
    server.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not protocol on stdout: {line:?}")))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["result"]["serverInfo"]["name"], "skillbridge");
    assert_eq!(
        lines[0]["result"]["protocolVersion"], "2025-06-18",
        "Codex 0.169's version is accepted"
    );
    assert!(
        stderr.contains("MCP client connected on stdio"),
        "the logs went to stderr:\n{stderr}"
    );
    assert!(!stderr.contains("ERROR"), "a client that leaves is no error:\n{stderr}");
}

#[tokio::test]
async fn over_stdio_a_cancelled_call_stops_its_skill() {
    // A database for `sql_query`, and a query that would count forever.
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("main.db");
    rusqlite::Connection::open(&database).unwrap();
    let config = dir.path().join("skillbridge.toml");
    std::fs::write(
        &config,
        format!("[skills.sql]\ndatabases = {{ main = {database:?} }}\n"),
    )
    .unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = start(&["--config", config.to_str().unwrap(), "--admin", &admin.to_string()]).await;
    let admin_get = |route: &str| {
        let url = format!("http://{admin}{route}");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };

    let forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let mut running = Box::pin(call(
        &client,
        "sql_query",
        json!({"database": "main", "query": forever}),
    ));
    tokio::time::timeout(WAIT, async {
        while !admin_get("/running").await.contains("sql_query") {
            tokio::select! {
                _ = &mut running => panic!("a query that counts forever answered"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await
    .expect("the query runs");
    // Dropping the request's future sends notifications/cancelled; the query stops at its next check.
    drop(running);
    let cancelled = "skillbridge_calls_total{skill=\"sql_query\",outcome=\"cancelled\"} 1";
    tokio::time::timeout(WAIT, async {
        while !admin_get("/metrics").await.contains(cancelled) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the skill stopped, counted as cancelled");
    assert!(!admin_get("/running").await.contains("sql_query"));
    // And the server goes on.
    let slug = call(&client, "slugify", json!({"text": "Still Here"})).await;
    assert_eq!(slug["content"][0]["text"], "still-here");
    client.cancel().await.unwrap();
}
