//! Toolsets against the codex-manager double: the sessions a bridge creates are offered only the skills its toolset
//! selects (by name, tag, `read_only`), and a call to a linked skill that the session was not offered is answered
//! "not offered in this session" and never runs (a model may name a tool it was never shown).

mod bridge_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_support::{WAIT, answer_success, answer_text, builder, only_thread, start, upstream};
use serde_json::json;
use skillbridge::BridgeError;
use skillbridge::skill;
use skillbridge::skill::{Catalog, SelectionError, Toolset};
use skillbridge::upstream::UpstreamError;
use skillbridge_doubles::CodexManagerDouble;

static DELETES: AtomicUsize = AtomicUsize::new(0);

/// Reads a ticket.
#[skill(read_only, tags = ["tickets"])]
fn ticket_read(id: String) -> String {
    format!("ticket {id}")
}

/// Deletes a ticket.
#[skill(destructive, tags = ["tickets", "admin"])]
fn ticket_delete(id: String) -> String {
    DELETES.fetch_add(1, Ordering::SeqCst);
    format!("deleted {id}")
}

/// Tells the time.
#[skill(read_only, tags = ["time"])]
fn clock() -> String {
    "noon".into()
}

fn catalog() -> Catalog {
    Catalog::from_registry().expect("the test skills form a catalog")
}

fn offered(toolset: Toolset) -> Vec<String> {
    toolset.select(&catalog()).unwrap().iter().cloned().collect()
}

#[test]
fn a_toolset_selects_by_name_tag_and_read_only() {
    assert_eq!(offered(Toolset::all()), ["clock", "ticket_delete", "ticket_read"]);
    assert_eq!(
        offered(Toolset::all().only(["tickets"])),
        ["ticket_delete", "ticket_read"]
    );
    assert_eq!(
        offered(Toolset::all().only(["tickets", "clock"]).exclude(["admin"])),
        ["clock", "ticket_read"]
    );
    assert_eq!(offered(Toolset::all().read_only(true)), ["clock", "ticket_read"]);
    let unknown = Toolset::all().only(["tickts"]).select(&catalog()).unwrap_err();
    assert!(matches!(unknown, SelectionError::Unknown { .. }), "{unknown}");
    assert_eq!(
        unknown.to_string(),
        "`tickts` is neither a skill nor a tag; the skills are: clock, ticket_delete, ticket_read; the tags: admin, \
         tickets, time"
    );
    let empty = Toolset::all()
        .only(["admin"])
        .read_only(true)
        .select(&catalog())
        .unwrap_err();
    assert_eq!(
        empty.to_string(),
        "the toolset offers no skill (tools admin, read-only)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_offered_its_toolset_and_a_call_outside_it_never_runs() {
    let double = CodexManagerDouble::start().await.unwrap();
    let toolset = Toolset::all().only(["tickets"]).read_only(true);
    let bridge = start(builder().upstream(upstream(&double).toolset(toolset))).await;
    let thread = only_thread(&bridge);

    let session = double.sessions().into_iter().find(|s| s.id == thread).unwrap();
    let tools: Vec<&str> = session.tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["ticket_read"]);
    // The admin `/sessions` route shows the same.
    assert_eq!(bridge.sessions()[0].tools, Some(vec!["ticket_read".to_owned()]));

    let read = double.inject_tool_call(&thread, "ticket_read", json!({"id": "T-1"}));
    let body = double.wait_answered(&read, WAIT).await.expect("answered");
    assert!(answer_success(&body), "{body}");
    assert_eq!(answer_text(&body), "ticket T-1");

    // Linked into the bridge, but not offered in this session: refused, and it never ran.
    let deletes = DELETES.load(Ordering::SeqCst);
    let delete = double.inject_tool_call(&thread, "ticket_delete", json!({"id": "T-1"}));
    let body = double.wait_answered(&delete, WAIT).await.expect("answered");
    assert!(!answer_success(&body), "{body}");
    assert_eq!(
        answer_text(&body),
        "tool `ticket_delete` is not offered in this session; its tools are: ticket_read"
    );
    assert_eq!(DELETES.load(Ordering::SeqCst), deletes);
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_toolset_naming_no_skill_or_tag_stops_start_up_before_any_session() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = builder()
        .upstream(upstream(&double).toolset(Toolset::all().only(["tickts"])))
        .build()
        .unwrap();
    let error = bridge.start().await.unwrap_err();
    assert!(
        matches!(&error, BridgeError::Upstream(UpstreamError::Invalid(message)) if message.contains("`tickts` is neither a skill nor a tag")),
        "{error}"
    );
    assert!(double.sessions().is_empty(), "no session was created");
}
