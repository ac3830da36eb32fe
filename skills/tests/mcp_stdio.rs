//! `skillbridge mcp` on stdio, as an MCP client starts it (Codex's `[mcp_servers.NAME] command = ..., args =
//! ["mcp"]`), driven by the official Rust SDK's client (rmcp): the shipped skills listed with their hints and output
//! schemas, a call of each kind (text, typed JSON, image, failure, bad arguments), stdout carrying only protocol
//! messages (the client would choke on anything else), and a clean exit when the client goes away.

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::process::Command;

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

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_toolset_narrows_what_the_client_sees() {
    let client = start(&["--tools", "tickets"]).await;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["ticket_lookup", "ticket_search"]);
    client.cancel().await.unwrap();
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
