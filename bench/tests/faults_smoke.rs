//! The fault suite end to end with `--quick` (every row, counts about fifty times smaller) against the debug binaries
//! `cargo test` just built: every fault is applied and every call is answered exactly once, none lost, none
//! misdelivered, and no skill runs twice (but for the row that kills the bridge without a journal). The speed and
//! memory figures of a debug build on a busy CI machine mean little, so they are printed, not asserted; the full run
//! is `cargo run --release -p skillbridge-bench --bin skillbridge-faults`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use skillbridge_bench::process::run_quick;

/// The quick run takes well under a minute on a debug build; this only stops a hung harness.
const DEADLINE: Duration = Duration::from_secs(240);

#[test]
fn a_quick_run_survives_every_fault_with_every_call_answered_once() {
    let dir = std::env::temp_dir().join(format!("skillbridge-faults-smoke-{}", std::process::id()));
    let out = dir.join("faults.json");
    let program = PathBuf::from(env!("CARGO_BIN_EXE_skillbridge-faults"));
    let (status, printed) = run_quick(&program, &dir, "faults.json", DEADLINE).unwrap();
    // 1 means a threshold was missed (judged below, row by row); anything else is a harness failure.
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "the quick run failed ({status}):\n{printed}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["mode"], "quick");
    let rows = report["rows"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|row| row["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7a", "7b", "8"], "{printed}");
    for row in rows {
        let id = row["id"].as_str().unwrap();
        let count = |field: &str| {
            row[field]
                .as_u64()
                .unwrap_or_else(|| panic!("row {id}: no {field} in {row}"))
        };
        assert_eq!(row["error"], Value::Null, "row {id} did not run to its end:\n{printed}");
        assert!(count("calls") > 0, "row {id}: {row}");
        assert_eq!(
            count("answered_once"),
            count("calls") - count("lost_by_restart"),
            "row {id}: every call answered once:\n{printed}"
        );
        for field in ["lost", "answered_twice", "misdelivered"] {
            assert_eq!(count(field), 0, "row {id}: {field}:\n{printed}");
        }
        if id != "7a" {
            assert_eq!(count("reruns"), 0, "row {id}: skills ran twice:\n{printed}");
        }
        for check in row["checks"].as_array().unwrap() {
            let what = check["what"].as_str().unwrap();
            let judged_by_speed_or_memory = what.starts_with("peak") || what.starts_with("calls/s");
            if !judged_by_speed_or_memory {
                assert_eq!(check["met"], true, "row {id}: {check}\n{printed}");
            }
        }
    }
    assert!(
        rows.iter()
            .any(|row| row["id"] == "7a" && row["reruns"].as_u64() > Some(0)),
        "{printed}"
    );
}
