//! The keyword table of `keyword_cases` through the REAL `codex app-server` (0.169.0), offline against the scripted
//! model: a bridge built as `skillbridge send --app-server` builds it runs one turn in which the model calls the
//! keyword skills with every case's violating arguments and every case's valid ones, all in one response. Codex
//! hides most of these bounds from the model (it shows `minItems` and `enum`, and `const` as an `enum`; see
//! `tests/fixtures/SCHEMA-FINDINGS.md`) and checks none of them, so only the bridge can hold them: the model must
//! read back each violation, and only the valid calls may run. Needs `scripts/install-codex.sh` (or
//! `SKILLBRIDGE_CODEX_BIN`); `SKILLBRIDGE_SKIP_CODEX=1` skips.

mod keyword_cases;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use keyword_cases::{ONE_AT_A_TIME, assert_no_problems, cases, runs, runs_problem};
use skillbridge::skill::Catalog;
use skillbridge::upstream::AppServerUpstream;
use skillbridge::upstream::app_server::{AppServerCommand, ThreadStartParams};
use skillbridge::{Bridge, TurnEnd};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, require_codex, turn_outputs};

/// Upper bound of the turn; only reached when something is broken.
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_model_reads_each_keyword_violation_codex_hides_and_only_the_valid_calls_run() {
    let cases = cases();
    // Call `i` of the script is case `i`'s violating call; call `cases.len() + i` its valid one.
    let script = cases
        .iter()
        .map(|case| (case.skill, case.violating.clone()))
        .chain(cases.iter().map(|case| (case.skill, case.valid.clone())))
        .fold(ModelScript::new(), |script, (skill, arguments)| {
            script.call(skill, arguments)
        });
    let Some(codex) = require_codex("the_model_reads_each_keyword_violation") else {
        return;
    };
    let model = ScriptedModel::start(script).await;
    let home = CodexHome::new(&model.base_url()).unwrap();
    let workdir = home.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    // As `skillbridge send --app-server <codex> --cwd <workdir>` builds it, with this file's skills.
    let upstream = AppServerUpstream::new(AppServerCommand::new(&codex).codex_home(home.path()))
        .thread_options(ThreadStartParams::new(&workdir));
    let bridge = Bridge::builder()
        .catalog(Catalog::from_registry().expect("the test skills form a catalog"))
        .upstream(upstream)
        .grace(Duration::from_secs(5))
        .build()
        .expect("a valid bridge");
    let _alone = ONE_AT_A_TIME.lock().await;
    let before = runs();

    let turn = bridge.send("place the orders").timeout(WAIT).await;
    bridge.shutdown().await;

    let turn = turn.expect("the turn runs");
    assert_eq!(turn.end, TurnEnd::Completed, "{turn:?}");
    let requests = model.requests();
    let read: HashMap<String, String> = requests
        .iter()
        .map(turn_outputs)
        .find(|outputs| !outputs.is_empty())
        .expect("the model got the calls' outputs")
        .into_iter()
        .collect();
    let mut problems = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let refused = read.get(&ModelScript::call_id(0, index));
        if refused != Some(&case.refusal()) {
            problems.push(format!(
                "{} {}: the model read {refused:?}, expected {:?}",
                case.keyword,
                case.violating,
                case.refusal()
            ));
        }
        let ran = read.get(&ModelScript::call_id(0, cases.len() + index));
        if !ran.is_some_and(|text| text.starts_with(&case.ran())) {
            problems.push(format!(
                "{} {} (valid): the model read {ran:?}",
                case.keyword, case.valid
            ));
        }
    }
    problems.extend(runs_problem(before, cases.len()));
    assert_no_problems("through the real Codex", &problems);
    // The bridge counted each as its metrics show them: every violating call refused, every valid one a success.
    let mut expected = BTreeMap::new();
    for case in &cases {
        for outcome in ["invalid_arguments", "success"] {
            *expected.entry((case.skill.to_owned(), outcome)).or_insert(0) += 1;
        }
    }
    let counted: BTreeMap<_, _> = bridge
        .stats()
        .call_counts()
        .into_iter()
        .map(|(skill, outcome, count)| ((skill, outcome), count))
        .collect();
    assert_eq!(counted, expected, "the bridge's calls by skill and outcome");
    let reply = turn.reply.expect("the model's final reply");
    assert!(
        reply.starts_with(&format!("Tool said: {}", cases[0].refusal())),
        "the model's reply quotes what it read: {reply}"
    );
}
