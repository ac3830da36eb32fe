//! Arguments are checked against the skill's whole input schema, for every keyword Codex drops from the schema the
//! model sees (`tests/fixtures/SCHEMA-FINDINGS.md`): a call that breaks a bound is answered `success:false` with
//! `path: message` and the skill never runs; a call within every bound runs. Each path a call takes here is driven
//! through the one table of `keyword_cases`: `Catalog::invoke`; the `call` command (this test binary re-run as a
//! skills binary, `cli::App` with these skills, printing and exiting as `skillbridge call` does); and the bridge
//! against the codex-manager double. The real Codex path is in `argument_validation_codex.rs`.

mod bridge_support;
mod keyword_cases;
mod rerun_as_cli;

use std::process::Output;

use bridge_support::{WAIT, answer_success, answer_text, bridge_for, only_thread, start};
use keyword_cases::{KeywordCase, ONE_AT_A_TIME, assert_no_problems, cases, runs, runs_problem};
use serde_json::{Value, json};
use skillbridge::skill::{Catalog, Invocation, Outcome, SkillContext};
use skillbridge_doubles::CodexManagerDouble;

async fn invoke(name: &str, arguments: Value) -> Invocation {
    let catalog = Catalog::from_registry().expect("the test skills form a catalog");
    catalog
        .invoke_detailed(name, arguments, SkillContext::detached(name))
        .await
}

#[tokio::test]
async fn bounds_on_plain_parameters_land_in_the_schema() {
    let catalog = Catalog::from_registry().unwrap();
    let properties = &catalog.get("bounded_lookup").unwrap().input_schema()["properties"];
    assert_eq!(properties["limit"]["minimum"], 1);
    assert_eq!(properties["limit"]["maximum"], 50);
    assert_eq!(properties["limit"]["description"], "How many results, 1 to 50.");
    assert_eq!(properties["ticket_id"]["pattern"], "^T-[0-9]+$");
    assert_eq!(properties["code"]["minLength"], 2);
    assert_eq!(
        catalog.get("bounded_lookup").unwrap().input_schema()["required"],
        json!(["ticket_id", "limit"])
    );
}

#[tokio::test]
async fn catalog_invoke_refuses_each_keyword_violation_unrun_and_runs_its_valid_counterpart() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut problems = Vec::new();
    for case in cases() {
        let before = runs();
        let refused = invoke(case.skill, case.violating.clone()).await;
        if refused.outcome != Outcome::InvalidArguments || refused.result.text_content() != case.refusal() {
            problems.push(format!(
                "{} {}: expected {:?}, got {:?} {:?}",
                case.keyword,
                case.violating,
                case.refusal(),
                refused.outcome,
                refused.result.text_content()
            ));
        }
        if runs() != before {
            problems.push(format!("{} {}: `{}` ran", case.keyword, case.violating, case.skill));
        }
        let ran = invoke(case.skill, case.valid.clone()).await;
        if ran.outcome != Outcome::Success || !ran.result.text_content().starts_with(&case.ran()) {
            problems.push(format!(
                "{} {} (valid): {:?} {:?}",
                case.keyword,
                case.valid,
                ran.outcome,
                ran.result.text_content()
            ));
        }
        if runs() != before + 1 {
            problems.push(format!(
                "{} {} (valid): `{}` did not run once",
                case.keyword, case.valid, case.skill
            ));
        }
    }
    assert_no_problems("through Catalog::invoke", &problems);
}

#[tokio::test]
async fn every_violation_is_named_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let before = runs();
    let invocation = invoke("bounded_lookup", json!({"ticket_id": "x", "limit": 80})).await;
    assert_eq!(runs(), before, "`bounded_lookup` ran");
    assert_eq!(invocation.outcome, Outcome::InvalidArguments);
    assert_eq!(
        invocation.result.text_content(),
        "invalid arguments for `bounded_lookup`: limit: 80 is greater than the maximum of 50; \
         ticket_id: \"x\" does not match \"^T-[0-9]+$\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_answers_each_keyword_violation_without_running_the_skill_and_runs_its_valid_counterpart() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let thread = only_thread(&bridge);
    let cases = cases();
    let _alone = ONE_AT_A_TIME.lock().await;
    let before = runs();
    // Every call at once, as a model's parallel calls come.
    let calls: Vec<(&KeywordCase, String, String)> = cases
        .iter()
        .map(|case| {
            let refused = double.inject_tool_call(&thread, case.skill, case.violating.clone());
            let ran = double.inject_tool_call(&thread, case.skill, case.valid.clone());
            (case, refused, ran)
        })
        .collect();

    let mut problems = Vec::new();
    for (case, refused, ran) in &calls {
        let body = double.wait_answered(refused, WAIT).await.expect("answered");
        if answer_success(&body) || answer_text(&body) != case.refusal() {
            problems.push(format!(
                "{} {}: expected success:false {:?}, got {body}",
                case.keyword,
                case.violating,
                case.refusal()
            ));
        }
        let body = double.wait_answered(ran, WAIT).await.expect("answered");
        if !answer_success(&body) || !answer_text(&body).starts_with(&case.ran()) {
            problems.push(format!("{} {} (valid): {body}", case.keyword, case.valid));
        }
    }
    problems.extend(runs_problem(before, cases.len()));
    assert_no_problems("through the bridge", &problems);
    bridge.shutdown().await;
}

/// What [`call_child`] writes on stderr once the command is done, before the number of skill runs it saw.
const RUNS_REPORT: &str = "skill runs: ";

/// `skillbridge call SKILL ARGUMENTS` of a skills binary holding this file's skills: this test binary, re-run as
/// [`call_child`].
async fn call(skill: &str, arguments: &Value) -> Output {
    let arguments = arguments.to_string();
    rerun_as_cli::rerun("call_child", &["call", skill, &arguments], &[], WAIT).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What [`call_child`] reported of the skill's runs, `None` when it did not get that far.
fn runs_reported(stderr: &str) -> Option<usize> {
    stderr
        .lines()
        .find_map(|line| line.strip_prefix(RUNS_REPORT)?.parse().ok())
}

#[tokio::test]
async fn call_exits_1_naming_each_keyword_violation_without_running_the_skill_and_runs_its_valid_counterpart() {
    let mut problems = Vec::new();
    for case in cases() {
        let out = call(case.skill, &case.violating).await;
        let stderr = text(&out.stderr);
        let printed = format!("error: {}", case.refusal());
        if out.status.code() != Some(1) || !stderr.lines().any(|line| line == printed) {
            problems.push(format!(
                "{} {}: expected exit 1 and {printed:?}, got {:?} with stderr {stderr:?}",
                case.keyword, case.violating, out.status
            ));
        }
        if runs_reported(&stderr) != Some(0) {
            problems.push(format!(
                "{} {}: `{}` ran: {stderr:?}",
                case.keyword, case.violating, case.skill
            ));
        }

        let out = call(case.skill, &case.valid).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        // The harness has written `test call_child ... ` before the result, on the same line.
        if out.status.code() != Some(0) || !stdout.contains(&case.ran()) || runs_reported(&stderr) != Some(1) {
            problems.push(format!(
                "{} {} (valid): expected exit 0, {:?} printed and one run, got {:?}, stdout {stdout:?}, \
                 stderr {stderr:?}",
                case.keyword,
                case.valid,
                case.ran(),
                out.status
            ));
        }
    }
    assert_no_problems("through `call`", &problems);
}

/// The command line run by the `call` test above, as a skills binary's `main` runs it (`cli::App` with this
/// file's skills, from parsing the arguments to the exit status), followed by how many times the skills ran;
/// does nothing unless started by that test.
#[test]
fn call_child() {
    let Some(args) = rerun_as_cli::child_args() else {
        return;
    };
    let status = rerun_as_cli::run(skillbridge::cli::App::new(), args);
    eprintln!("{RUNS_REPORT}{}", runs());
    std::process::exit(status);
}
