//! The SQL skills of the shipped binary read the databases the operator configures in `[skills.sql]` of the
//! settings file, chosen by name: through `call`, `serve` and `send`, listed by `skills` and `--print-config`,
//! and refused when the model names anything else or the table is unusable.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{TurnScript, answer_text};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);

/// A settings file configuring `main` (a database with `users(name)`, two rows) in a fresh directory.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("main.db");
        Connection::open(&database)
            .unwrap()
            .execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada'), ('bob');")
            .unwrap();
        let setup = Self { dir };
        setup.write_config(&format!("[skills.sql]\ndatabases = {{ main = {:?} }}\n", database));
        setup
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("main.db")
    }

    fn config(&self) -> String {
        self.dir.path().join("skillbridge.toml").display().to_string()
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skillbridge"));
    command
        .args(args)
        .env_remove("SKILLBRIDGE_CONFIG")
        .env_remove("CODEX_MANAGER_API_BASE")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

async fn skillbridge(args: &[&str]) -> Output {
    tokio::time::timeout(WAIT, command(args).output())
        .await
        .expect("skillbridge finishes")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn call_reads_a_configured_database_by_name_and_refuses_paths() {
    let setup = Setup::new();
    let config = setup.config();
    let query = r#"{"database": "main", "query": "SELECT name FROM users ORDER BY name"}"#;
    let out = skillbridge(&["call", "sql_query", query, "--config", &config]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(rows["rows"], json!([["ada"], ["bob"]]));

    // The variable finds the file too.
    let out = command(&["call", "sql_tables", r#"{"database": "main"}"#])
        .env("SKILLBRIDGE_CONFIG", &config)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A path of the model's choosing, even the configured file's, is refused.
    let path = setup.database().display().to_string();
    let by_path = json!({"database": path, "query": "SELECT 1"}).to_string();
    let out = skillbridge(&["call", "sql_query", &by_path, "--config", &config]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: invalid arguments for `sql_query`: database: \"{path}\" is not one of \"main\"")
    );

    // Without the settings there is no database to read.
    let out = skillbridge(&["call", "sql_query", query]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no databases are configured"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn skills_lists_the_configured_names_and_the_state_parameters() {
    let setup = Setup::new();
    let out = skillbridge(&["skills", "show", "sql_query", "--config", &setup.config()]).await;
    let shown = text(&out.stdout);
    assert!(
        shown.contains("state:       databases: State<skillbridge_skills::sql::SqlDatabases>"),
        "{shown}"
    );
    let out = skillbridge(&["skills", "--json", "--config", &setup.config()]).await;
    let tools: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let sql_query = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "sql_query")
        .unwrap();
    assert_eq!(
        sql_query["inputSchema"]["properties"]["database"]["enum"],
        json!(["main"])
    );

    let out = skillbridge(&["skills", "--json", "--states"]).await;
    let listing: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        listing["states"]["ticket_lookup"],
        json!([{"parameter": "store", "type": "skillbridge_skills::tickets::TicketStore"}])
    );
    assert_eq!(
        listing["states"]["note_save"][0]["type"],
        "skillbridge_skills::notes::Scratchpads"
    );
    assert!(
        listing["states"].get("uppercase").is_none(),
        "a skill without state is not listed"
    );
}

#[tokio::test]
async fn print_config_shows_the_sql_table_and_unusable_tables_are_usage_errors() {
    let setup = Setup::new();
    let out = skillbridge(&["serve", "--config", &setup.config(), "--print-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: toml::Table = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        printed["skills"]["sql"]["databases"]["main"].as_str(),
        Some(setup.database().to_str().unwrap())
    );

    for (config, expected) in [
        (
            "[skills.sql]\ndatabases = { main = \"/nonexistent/x.db\" }\n",
            "config file: [skills.sql]: databases: `main` is /nonexistent/x.db, which is not a file",
        ),
        (
            "[skills.sql]\ndatabase = \"main\"\n",
            "config file: [skills.sql]: unknown field `database`",
        ),
        (
            "[skills.sqlite]\ndatabases = {}\n",
            "config file: [skills.sqlite] configures no skill: this binary reads sql",
        ),
    ] {
        setup.write_config(config);
        let path = setup.config();
        for command in [vec!["serve", "--print-config"], vec!["call", "sql_tables", "{}"]] {
            let mut args = command.clone();
            args.extend(["--config", &path]);
            let out = skillbridge(&args).await;
            assert_eq!(out.status.code(), Some(2), "{command:?} {config}");
            assert!(
                text(&out.stderr).contains(expected),
                "{command:?}: {}",
                text(&out.stderr)
            );
        }
    }
}

/// Reads stdout until the `session <id>` line; returns the id.
async fn served_session(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(id) = line.strip_prefix("session ") {
                return id.trim().to_owned();
            }
        }
        panic!("serve exited without printing a session");
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("serve prints its session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_sql_calls_from_the_configured_database() {
    let setup = Setup::new();
    let double = CodexManagerDouble::start().await.unwrap();
    let mut child = command(&["serve", "--manager-url", &double.base_url(), "--no-admin"])
        .args(["--config", &setup.config(), "--poll-interval", "200ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let thread = served_session(&mut child).await;
    let session = double.sessions().into_iter().find(|s| s.id == thread).unwrap();
    let announced = session.tools.iter().find(|tool| tool["name"] == "sql_query").unwrap();
    assert_eq!(
        announced["inputSchema"]["properties"]["database"]["enum"],
        json!(["main"])
    );

    let id = double.inject_tool_call(
        &thread,
        "sql_query",
        json!({"database": "main", "query": "SELECT count(*) AS n FROM users"}),
    );
    let answer = double.wait_answered(&id, WAIT).await.expect("the call is answered");
    let rows: Value = serde_json::from_str(&answer_text(&answer)).unwrap();
    assert_eq!(rows["rows"], json!([[2]]), "{answer}");
    let id = double.inject_tool_call(&thread, "sql_tables", json!({"database": "/etc/passwd"}));
    let answer = double.wait_answered(&id, WAIT).await.expect("the call is answered");
    assert_eq!(answer["success"], false);
    assert_eq!(
        answer_text(&answer),
        "invalid arguments for `sql_tables`: database: \"/etc/passwd\" is not one of \"main\""
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn send_answers_a_sql_call_from_the_configured_database() {
    let setup = Setup::new();
    let double = CodexManagerDouble::builder()
        .on_message(|_| {
            Some(
                TurnScript::new()
                    .tool_call(
                        "sql_query",
                        json!({"database": "main", "query": "SELECT name FROM users LIMIT 1"}),
                    )
                    .final_message_from(|answers| format!("Rows: {}", answer_text(&answers[0]))),
            )
        })
        .start()
        .await
        .unwrap();
    let out = skillbridge(&[
        "send",
        "Who is the first user?",
        "--manager-url",
        &double.base_url(),
        "--config",
        &setup.config(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#""rows":[["ada"]]"#),
        "{}",
        text(&out.stdout)
    );
}
