//! `skillbridge mcp` as an MCP server of the REAL Codex (0.169.0), offline: CODEX_HOME's `config.toml` points
//! Codex at a scripted model on loopback and names `skillbridge mcp` under `[mcp_servers.tools]`; the script calls
//! `uppercase` in the namespace Codex gives that server's tools (`mcp__tools`). Once through `codex exec`, once
//! through `codex app-server` (driven by `skillbridge send --app-server`, where the call is an `mcpToolCall` item and
//! never reaches the bridge as a dynamic-tool request). Needs `scripts/install-codex.sh` (or
//! `SKILLBRIDGE_CODEX_BIN`); `SKILLBRIDGE_SKIP_CODEX=1` skips.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, require_codex, tool_outputs};
use tokio::process::Command;

/// Upper bound of every wait; only reached when something is broken.
const WAIT: Duration = Duration::from_secs(60);

/// The MCP server's name in Codex's configuration, and so `mcp__tools` for its tools.
const SERVER: &str = "tools";

/// The real codex, a scripted model calling `mcp__tools`'s `uppercase`, and a CODEX_HOME naming `skillbridge mcp`.
struct Rig {
    codex: PathBuf,
    model: ScriptedModel,
    home: CodexHome,
    workdir: PathBuf,
}

impl Rig {
    async fn start(test: &str) -> Option<Self> {
        let codex = require_codex(test)?;
        let script = ModelScript::new().call_in(format!("mcp__{SERVER}"), "uppercase", json!({"text": "hello mcp"}));
        let model = ScriptedModel::start(script).await;
        let home = CodexHome::new(&model.base_url()).unwrap();
        // `uppercase` is read-only (readOnlyHint), which Codex runs without an approval setting.
        let server = format!(
            "\n[mcp_servers.{SERVER}]\ncommand = {:?}\nargs = [\"mcp\"]\nrequired = true\n",
            env!("CARGO_BIN_EXE_skillbridge")
        );
        let config = home.path().join("config.toml");
        let mut toml = std::fs::read_to_string(&config).unwrap();
        toml.push_str(&server);
        std::fs::write(&config, toml).unwrap();
        let workdir = home.path().join("work");
        std::fs::create_dir(&workdir).unwrap();
        Some(Self {
            codex,
            model,
            home,
            workdir,
        })
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.workdir)
            .env("CODEX_HOME", self.home.path())
            .kill_on_drop(true);
        for name in [
            "SKILLBRIDGE_CONFIG",
            "SKILLBRIDGE_APP_SERVER",
            "SKILLBRIDGE_LOG_FORMAT",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command
    }

    /// The MCP tools the model was shown, and the output of its call.
    fn seen_by_model(&self) -> (Value, String) {
        let requests = self.model.requests();
        let namespace = requests[0]["tools"]
            .as_array()
            .expect("the model request lists tools")
            .iter()
            .find(|tool| tool["type"] == "namespace" && tool["name"] == format!("mcp__{SERVER}"))
            .cloned()
            .unwrap_or_else(|| panic!("no namespace mcp__{SERVER} in {}", requests[0]["tools"]));
        let outputs = requests
            .iter()
            .map(tool_outputs)
            .find(|outputs| !outputs.is_empty())
            .expect("the tool output reached the model");
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(outputs[0].0, "call_0_0");
        (namespace, outputs[0].1.clone())
    }
}

async fn output(mut command: Command) -> Output {
    tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the command finishes")
        .unwrap()
}

fn check_namespace(namespace: &Value) {
    let tools = namespace["tools"].as_array().unwrap();
    let uppercase = tools
        .iter()
        .find(|tool| tool["name"] == "uppercase")
        .expect("uppercase is listed");
    assert_eq!(
        uppercase["description"],
        "Converts a text to upper case (Unicode-aware: `straße` becomes `STRASSE`)."
    );
    assert_eq!(uppercase["parameters"]["properties"]["text"]["type"], "string");
    assert!(tools.len() >= 12, "every shipped skill: {}", tools.len());
}

#[tokio::test]
async fn codex_exec_calls_a_skill_in_its_mcp_namespace_and_the_model_reads_the_output() {
    let Some(rig) = Rig::start("codex_exec_calls_a_skill_in_its_mcp_namespace").await else {
        return;
    };
    let codex = rig.codex.to_str().unwrap().to_owned();
    let out = output(rig.command(&codex, &["exec", "--skip-git-repo-check", "Uppercase 'hello mcp'."])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (namespace, output) = rig.seen_by_model();
    check_namespace(&namespace);
    assert!(output.contains("HELLO MCP"), "the model got {output:?}");
}

#[tokio::test]
async fn codex_app_server_runs_the_mcp_call_itself_as_an_mcp_tool_call_item() {
    let Some(rig) = Rig::start("codex_app_server_runs_the_mcp_call_itself").await else {
        return;
    };
    let codex = rig.codex.to_str().unwrap().to_owned();
    let workdir = rig.workdir.to_str().unwrap().to_owned();
    let args = [
        "send",
        "--app-server",
        &codex,
        "--cwd",
        &workdir,
        "Uppercase 'hello mcp'.",
    ];
    let mut command = rig.command(env!("CARGO_BIN_EXE_skillbridge"), &args);
    command.env("RUST_LOG", "skillbridge=debug");
    let out = output(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (namespace, output) = rig.seen_by_model();
    check_namespace(&namespace);
    assert!(output.contains("HELLO MCP"), "the model got {output:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HELLO MCP"),
        "the reply quotes it"
    );
    // Codex ran the call through its MCP client, as an `mcpToolCall` item: the bridge of `send` got no dynamic-tool
    // request for it.
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("item completed") && line.contains("item_type=mcpToolCall")),
        "{stderr}"
    );
    assert!(!stderr.contains("tool=uppercase"), "{stderr}");
}
