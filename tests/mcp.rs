//! The MCP server through the official Rust SDK's client (rmcp) over streamable HTTP, in this process: what
//! `tools/list` shows, calls of text, typed-JSON, image and failing skills, arguments that break the schema, an
//! unknown tool, a cancelled slow call, a skill past its deadline, a token, and a burst of 100 concurrent calls.
//! (Over stdio, through the `skillbridge` binary: `skills/tests/mcp_cli.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use skillbridge::skill::{Catalog, SkillContext, Toolset};
use skillbridge::upstream::McpUpstream;
use skillbridge::{Bridge, SkillError, skill};
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(20);

/// Shouts a text.
#[skill(read_only, title = "Shout")]
fn shout(
    /// The text to shout.
    text: String,
) -> String {
    format!("{}!", text.to_uppercase())
}

/// A ticket.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct Ticket {
    /// Its id.
    id: String,
    /// Open or closed.
    status: String,
}

/// Looks a ticket up.
#[skill(read_only)]
fn ticket(
    /// Like T-1.
    #[schemars(regex(pattern = r"^T-[0-9]+$"))]
    id: String,
) -> Result<Ticket, SkillError> {
    if id == "T-0" {
        return Err(SkillError::new("no ticket T-0"));
    }
    Ok(Ticket {
        id,
        status: "open".into(),
    })
}

/// A one-pixel PNG.
#[skill]
fn pixel() -> skillbridge::skill::ToolResult {
    skillbridge::skill::ToolResult {
        content_items: vec![skillbridge::skill::ContentItem::image_url(
            "data:image/png;base64,iVBORw0KGgo=",
        )],
        success: true,
    }
}

static STARTED: Notify = Notify::const_new();
static CANCELLED: AtomicUsize = AtomicUsize::new(0);

/// Waits until cancelled.
#[skill(timeout = "30s")]
async fn wait_forever(ctx: SkillContext) -> String {
    STARTED.notify_one();
    ctx.cancelled().await;
    CANCELLED.fetch_add(1, Ordering::SeqCst);
    "cancelled".into()
}

/// Sleeps far past its 200 ms deadline.
#[skill(timeout = "200ms")]
async fn dawdle() -> String {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "too late".into()
}

/// Serves this binary's skills (but `excluded`) over HTTP on a free port; returns the bridge and the URL.
async fn serve(token: Option<&str>, toolset: Toolset) -> (Bridge, String) {
    let upstream = Arc::new(McpUpstream::http("127.0.0.1:0".parse().unwrap(), token.map(Into::into)).toolset(toolset));
    let bridge = Bridge::builder()
        .catalog(Catalog::from_registry().unwrap())
        .upstream(Arc::clone(&upstream))
        .build()
        .unwrap();
    bridge.start().await.unwrap();
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(addr) = upstream.local_addr() {
                return addr;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the MCP server listens");
    (bridge, format!("http://{addr}/mcp"))
}

async fn client(url: &str, token: Option<&str>) -> RunningService<RoleClient, ()> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport).await.expect("the client initializes")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, arguments: Value) -> CallToolResult {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool}: {error}"))
}

fn text(result: &CallToolResult) -> String {
    let value = serde_json::to_value(result).unwrap();
    value["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn tools_are_listed_with_their_schemas_titles_hints_and_output_schemas() {
    let (bridge, url) = serve(None, Toolset::all()).await;
    let client = client(&url, None).await;
    let tools = client.list_all_tools().await.unwrap();
    let tools: Value = serde_json::to_value(&tools).unwrap();
    let by_name = |name: &str| {
        tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap()
    };
    let catalog = Catalog::from_registry().unwrap();
    let shout = by_name("shout");
    assert_eq!(shout["description"], "Shouts a text.");
    assert_eq!(shout["inputSchema"], *catalog.get("shout").unwrap().input_schema());
    assert_eq!(shout["title"], "Shout");
    assert_eq!(shout["annotations"], json!({"title": "Shout", "readOnlyHint": true}));
    assert!(shout.get("outputSchema").is_none(), "text has no output schema");
    let ticket = by_name("ticket");
    assert_eq!(ticket["outputSchema"]["properties"]["status"]["type"], "string");
    assert_eq!(tools.as_array().unwrap().len(), catalog.len());
    client.cancel().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test]
async fn calls_answer_text_structured_json_images_and_failures_as_the_bridge_would() {
    let (bridge, url) = serve(None, Toolset::all()).await;
    let client = client(&url, None).await;

    let shouted = call(&client, "shout", json!({"text": "hi"})).await;
    assert_eq!(text(&shouted), "HI!");
    assert_ne!(shouted.is_error, Some(true));

    let ticket = call(&client, "ticket", json!({"id": "T-7"})).await;
    assert_eq!(ticket.structured_content, Some(json!({"id": "T-7", "status": "open"})));
    assert_eq!(
        serde_json::from_str::<Value>(&text(&ticket)).unwrap(),
        json!({"id": "T-7", "status": "open"})
    );

    let image = serde_json::to_value(call(&client, "pixel", json!({})).await).unwrap();
    assert_eq!(
        image["content"][0],
        json!({"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"})
    );

    let failed = call(&client, "ticket", json!({"id": "T-0"})).await;
    assert_eq!(failed.is_error, Some(true));
    assert!(text(&failed).contains("no ticket T-0"), "{}", text(&failed));

    // Arguments that break the schema never reach the skill, and say why.
    let refused = call(&client, "ticket", json!({"id": "7"})).await;
    assert_eq!(refused.is_error, Some(true));
    let why = text(&refused);
    assert!(
        why.contains("invalid arguments for `ticket`") && why.contains("id"),
        "{why}"
    );

    // An unknown tool is a protocol error naming the tools there are.
    let arguments = json!({}).as_object().cloned().unwrap();
    let unknown = client
        .call_tool(CallToolRequestParams::new("nope").with_arguments(arguments))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("no tool named \"nope\"") && unknown.contains("shout"),
        "{unknown}"
    );

    // Counted as every bridge call is.
    let counts = bridge.stats().skill_counts("ticket");
    assert_eq!(counts.total, 3, "{counts:?}");
    client.cancel().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_call_fires_the_skills_cancellation_token() {
    let (bridge, url) = serve(None, Toolset::all()).await;
    let client = client(&url, None).await;
    let mut waiting = Box::pin(call(&client, "wait_forever", json!({})));
    tokio::select! {
        _ = &mut waiting => panic!("a skill that waits forever answered"),
        _ = STARTED.notified() => {}
    }
    // Dropping the request's future sends notifications/cancelled.
    drop(waiting);
    tokio::time::timeout(WAIT, async {
        while CANCELLED.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the skill saw its cancellation");
    assert_eq!(
        bridge.stats().skill_counts("wait_forever").by_outcome.get("cancelled"),
        Some(&1)
    );
    client.cancel().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_skill_past_its_deadline_answers_an_error_naming_it() {
    let (bridge, url) = serve(None, Toolset::all()).await;
    let client = client(&url, None).await;
    let late = tokio::time::timeout(WAIT, call(&client, "dawdle", json!({})))
        .await
        .expect("answered at the deadline, not when the skill would have finished");
    assert_eq!(late.is_error, Some(true));
    let message = text(&late);
    assert!(message.contains("dawdle") && message.contains("200ms"), "{message}");
    assert_eq!(
        bridge.stats().skill_counts("dawdle").by_outcome.get("timed_out"),
        Some(&1)
    );
    client.cancel().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_token_guards_the_server_and_a_toolset_narrows_the_list() {
    let (bridge, url) = serve(Some("s3cret"), Toolset::all().read_only(true)).await;
    let anonymous = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(url.as_str()),
    );
    assert!(().serve(anonymous).await.is_err(), "no token, no session");
    let client = client(&url, Some("s3cret")).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["shout", "ticket"], "only the read-only skills");
    let arguments = json!({}).as_object().cloned().unwrap();
    let refused = client
        .call_tool(CallToolRequestParams::new("pixel").with_arguments(arguments))
        .await;
    assert!(refused.is_err(), "a skill left out is not there");
    client.cancel().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_concurrent_calls_is_answered_each_with_its_own_result() {
    let (bridge, url) = serve(None, Toolset::all()).await;
    let client = Arc::new(client(&url, None).await);
    let calls = (0..100).map(|i| {
        let client = Arc::clone(&client);
        tokio::spawn(async move { (i, text(&call(&client, "shout", json!({"text": format!("n{i}")})).await)) })
    });
    for answered in futures::future::join_all(calls).await {
        let (i, text) = answered.unwrap();
        assert_eq!(text, format!("N{i}!"));
    }
    assert_eq!(bridge.stats().skill_counts("shout").total, 100);
    bridge.shutdown().await;
}

/// Counts to three, reporting each step.
#[skill]
async fn count_to_three(ctx: SkillContext) -> String {
    for step in 1..=3 {
        ctx.progress(f64::from(step), Some(3.0), &format!("step {step}"));
    }
    "counted".into()
}

/// A client that keeps the progress notifications it receives.
struct ProgressClient(tokio::sync::mpsc::UnboundedSender<rmcp::model::ProgressNotificationParam>);

impl rmcp::ClientHandler for ProgressClient {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(params);
    }
}

#[tokio::test]
async fn a_skills_progress_reaches_a_client_that_asked_for_it() {
    let (bridge, url) = serve(None, Toolset::all()).await;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(url.as_str()),
    );
    let client = ProgressClient(sender).serve(transport).await.unwrap();
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(CallToolRequestParams::new(
        "count_to_three",
    )));
    let handle = client
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let response = handle.await_response().await.unwrap();
    assert!(format!("{response:?}").contains("counted"), "{response:?}");
    let mut steps = Vec::new();
    while steps.len() < 3 {
        let progress = tokio::time::timeout(WAIT, received.recv())
            .await
            .expect("progress")
            .unwrap();
        assert_eq!(progress.progress_token, token);
        assert_eq!(progress.total, Some(3.0));
        steps.push((progress.progress, progress.message.unwrap_or_default()));
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        steps,
        [(1.0, "step 1".into()), (2.0, "step 2".into()), (3.0, "step 3".into())]
    );
    // A client that sent no progress token gets none, and the skill answers all the same.
    let plain = self::client(&url, None).await;
    assert_eq!(text(&call(&plain, "count_to_three", json!({})).await), "counted");
    client.cancel().await.unwrap();
    plain.cancel().await.unwrap();
    bridge.shutdown().await;
}
