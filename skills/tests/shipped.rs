//! The shipped skills called the way the bridge calls them: through the catalog, with JSON arguments and a
//! context, answering the tool result Codex receives.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use rusqlite::Connection;
use serde_json::{Value, json};
use skillbridge::State;
use skillbridge::skill::{Catalog, ContentItem, SkillContext, ToolResult};
use skillbridge_skills::sql::{SqlDatabases, SqlSettings};
use tokio_util::sync::CancellationToken;

/// The shipped skills with their states, and no SQL database configured.
fn catalog() -> Catalog {
    catalog_with(SqlSettings::default())
}

fn catalog_with(sql: SqlSettings) -> Catalog {
    Catalog::from_registry_with(skillbridge_skills::states(sql).unwrap()).unwrap()
}

/// `[skills.sql] databases = { main = path }`.
fn main_database(path: &Path) -> SqlSettings {
    SqlSettings {
        databases: BTreeMap::from([("main".to_owned(), path.to_owned())]),
    }
}

/// Calls a SQL skill with `main` configured as `database`.
async fn call_sql(name: &str, database: &tempfile::NamedTempFile, arguments: Value) -> ToolResult {
    catalog_with(main_database(database.path()))
        .invoke(name, arguments, SkillContext::detached(name))
        .await
}

fn in_thread(thread: &str, tool: &str) -> SkillContext {
    SkillContext::new(
        thread,
        Some("turn".into()),
        "call_0",
        "0",
        tool,
        CancellationToken::new(),
    )
}

async fn call(name: &str, arguments: Value) -> ToolResult {
    catalog().invoke(name, arguments, SkillContext::detached(name)).await
}

fn json_of(result: &ToolResult) -> Value {
    assert!(result.success, "{result:?}");
    serde_json::from_str(&result.text_content()).unwrap()
}

/// A small database: `users(id, name, active)` with three rows.
fn sample_database() -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".db").tempfile().unwrap();
    let connection = Connection::open(file.path()).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, active INTEGER, avatar BLOB);
             INSERT INTO users (name, active, avatar) VALUES ('ada', 1, x'0102'), ('bob', 0, NULL), ('cy', 1, NULL);
             CREATE VIEW active_users AS SELECT name FROM users WHERE active = 1;",
        )
        .unwrap();
    file
}

#[tokio::test]
async fn sql_query_returns_rows_as_json() {
    let database = sample_database();
    let result = call_sql(
        "sql_query",
        &database,
        json!({"database": "main", "query": "SELECT id, name, avatar FROM users WHERE active = 1 ORDER BY id"}),
    )
    .await;
    assert_eq!(
        json_of(&result),
        json!({
            "columns": ["id", "name", "avatar"],
            "rows": [[1, "ada", "<blob: 2 bytes>"], [3, "cy", null]],
            "truncated": false
        })
    );
    let limited = call_sql(
        "sql_query",
        &database,
        json!({"database": "main", "query": "SELECT name FROM users", "max_rows": 2}),
    )
    .await;
    assert_eq!(json_of(&limited)["truncated"], true);
    // The bound is the schema's, checked before the skill runs.
    let none = call_sql(
        "sql_query",
        &database,
        json!({"database": "main", "query": "SELECT name FROM users", "max_rows": 0}),
    )
    .await;
    assert_eq!(
        none.text_content(),
        "invalid arguments for `sql_query`: max_rows: 0 is less than the minimum of 1"
    );
}

#[tokio::test]
async fn sql_query_refuses_anything_but_one_read_only_statement() {
    let database = sample_database();
    for (query, expected) in [
        (
            "DELETE FROM users",
            "query: only SELECT, WITH and VALUES queries are allowed, not DELETE",
        ),
        (
            "WITH doomed AS (SELECT 1) DELETE FROM users",
            "only read-only queries are allowed",
        ),
        ("SELECT 1; DROP TABLE users", "query: give exactly one statement"),
        ("SELECT nope FROM users", "query failed: no such column: nope"),
    ] {
        let result = call_sql("sql_query", &database, json!({"database": "main", "query": query})).await;
        assert!(!result.success, "{query} must fail");
        assert!(
            result.text_content().starts_with(expected),
            "{query}: {}",
            result.text_content()
        );
    }
    let count = Connection::open(database.path())
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |row| row.get::<_, i64>(0))
        .unwrap();
    assert_eq!(count, 3, "nothing was deleted");

    assert!(!database.path().with_extension("db-journal").exists());
}

#[tokio::test]
async fn the_sql_skills_read_only_configured_databases_chosen_by_name() {
    let database = sample_database();
    let configured = catalog_with(main_database(database.path()));
    for skill in ["sql_query", "sql_tables"] {
        let schema = configured.get(skill).unwrap().input_schema();
        assert_eq!(schema["properties"]["database"]["enum"], json!(["main"]), "{skill}");
    }
    // The model names a path, even the configured file's: refused before the skill runs (the names are the
    // schema's `enum`), with the names to choose from.
    let path = database.path().display().to_string();
    for chosen in [path.as_str(), "/etc/passwd", "other"] {
        let refused = configured
            .invoke(
                "sql_query",
                json!({"database": chosen, "query": "SELECT 1"}),
                SkillContext::detached("sql_query"),
            )
            .await;
        assert!(!refused.success);
        assert_eq!(
            refused.text_content(),
            format!("invalid arguments for `sql_query`: database: \"{chosen}\" is not one of \"main\"")
        );
    }
    // With none configured there is nothing to choose from, and the schema says nothing of it.
    let unconfigured = catalog();
    let schema = unconfigured.get("sql_tables").unwrap().input_schema();
    assert_eq!(schema["properties"]["database"].get("enum"), None);
    let refused = call("sql_tables", json!({"database": path})).await;
    assert!(
        refused
            .text_content()
            .starts_with("database: no databases are configured"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn sql_tables_lists_tables_views_and_columns() {
    let database = sample_database();
    let result = call_sql("sql_tables", &database, json!({"database": "main"})).await;
    let tables = json_of(&result);
    assert_eq!(tables[0]["name"], "active_users");
    assert_eq!(tables[0]["kind"], "view");
    assert_eq!(tables[1]["name"], "users");
    assert_eq!(
        tables[1]["columns"][0],
        json!({"name": "id", "declared_type": "INTEGER", "primary_key": true})
    );
}

#[test]
fn cancellation_interrupts_a_running_query() {
    let database = sample_database();
    let token = CancellationToken::new();
    token.cancel();
    let ctx = SkillContext::new("t", None, "c", "1", "sql_query", token);
    // Billions of steps if not interrupted; SQLite's progress handler sees the fired token.
    let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
    let databases = State::new(SqlDatabases::new(main_database(database.path())).unwrap());
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = skillbridge_skills::sql::sql_query("main".into(), endless.into(), None, databases, ctx);
        let _ = done.send(result.map_err(|error| error.to_string()));
    });
    let result = outcome
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the query was interrupted instead of running on");
    assert_eq!(result.unwrap_err(), "the query was cancelled");
}

#[tokio::test]
async fn notes_are_kept_per_conversation() {
    let catalog = catalog();
    let saved = catalog
        .invoke(
            "note_save",
            json!({"key": "customer", "text": "ACME"}),
            in_thread("thread-a", "note_save"),
        )
        .await;
    assert_eq!(saved.text_content(), "saved note `customer`");
    let replaced = catalog
        .invoke(
            "note_save",
            json!({"key": "customer", "text": "ACME Corp"}),
            in_thread("thread-a", "note_save"),
        )
        .await;
    assert_eq!(replaced.text_content(), "replaced note `customer`");

    let read = catalog
        .invoke("note_read", json!({}), in_thread("thread-a", "note_read"))
        .await;
    assert_eq!(json_of(&read), json!({"customer": "ACME Corp"}));
    let other = catalog
        .invoke(
            "note_read",
            json!({"key": "customer"}),
            in_thread("thread-b", "note_read"),
        )
        .await;
    assert!(!other.success);
    assert_eq!(
        other.text_content(),
        "no note `customer`; this conversation has no notes yet"
    );
}

#[tokio::test]
async fn bar_chart_answers_text_and_a_png_image() {
    let result = call(
        "bar_chart",
        json!({"title": "Tickets", "labels": ["open", "closed"], "values": [3, 5]}),
    )
    .await;
    assert!(result.success, "{result:?}");
    let [ContentItem::InputText { text }, ContentItem::InputImage { image_url }] = result.content_items.as_slice()
    else {
        panic!("expected text then image: {result:?}");
    };
    assert_eq!(text, "Tickets (2 bars, 480x240 PNG below). open: 3, closed: 5");
    let encoded = image_url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (480, 240));
}

#[tokio::test]
async fn ticket_search_takes_a_struct_input() {
    let result = call("ticket_search", json!({"status": "open", "text": "email"})).await;
    let tickets = json_of(&result);
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    assert_eq!(tickets[0]["id"], "T-1004");
    assert_eq!(tickets[0]["status"], "open");

    let bad = call("ticket_search", json!({"status": "lost"})).await;
    assert!(!bad.success);
    assert!(
        bad.text_content()
            .starts_with("invalid arguments for `ticket_search`: status: \"lost\" is not one of"),
        "{}",
        bad.text_content()
    );
    // The bound is the schema's, checked before the skill runs.
    let too_many = call("ticket_search", json!({"limit": 80})).await;
    assert_eq!(
        too_many.text_content(),
        "invalid arguments for `ticket_search`: limit: 80 is greater than the maximum of 50"
    );
}

#[tokio::test]
async fn current_time_reads_the_clock_in_a_zone() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let reading = json_of(&call("current_time", json!({"time_zone": "Asia/Tokyo"})).await);
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(reading["time_zone"], "Asia/Tokyo");
    assert_eq!(reading["utc_offset"], "+09:00");
    let unix = reading["unix_seconds"].as_i64().unwrap();
    assert!((before..=after).contains(&unix), "{unix} not in {before}..={after}");
    assert_eq!(json_of(&call("current_time", json!({})).await)["time_zone"], "UTC");
}

#[tokio::test]
async fn text_skills_answer_plain_text() {
    assert_eq!(
        call("slugify", json!({"text": "Hello, World!"})).await.text_content(),
        "hello-world"
    );
    assert_eq!(call("uppercase", json!({"text": "abc"})).await.text_content(), "ABC");
}
