//! Several bridges over Redis end to end, on the debug binaries `cargo test` just built, against a real
//! `redis-server` (which `.ci/run` installs) and the codex-manager double: three bridges of one group serve 30,000
//! calls of a 5 ms skill over eight sessions while one of them is SIGKILLed and Redis is restarted for 2 s. Every
//! call is answered exactly once, no call runs twice on a bridge that lived, the killed bridge's runs in flight run
//! once more elsewhere, and the others serve all eight sessions (see `skillbridge-cluster`'s failover run). The
//! scale run's figures mean little on a debug build, so its table is printed, not judged; the full run is
//! `cargo run --release -p skillbridge-bench --bin skillbridge-cluster`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use skillbridge_bench::process::run_quick;

/// The quick run takes under a minute on a debug build; this only stops a hung harness.
const DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn three_bridges_answer_every_call_once_through_a_kill_and_a_redis_restart() {
    let dir = std::env::temp_dir().join(format!("skillbridge-cluster-smoke-{}", std::process::id()));
    let program = PathBuf::from(env!("CARGO_BIN_EXE_skillbridge-cluster"));
    let (status, printed) = run_quick(&program, &dir, "cluster.json", DEADLINE).unwrap();
    let report: Value = std::fs::read_to_string(dir.join("cluster.json"))
        .map_err(anyhow::Error::from)
        .and_then(|text| Ok(serde_json::from_str(&text)?))
        .unwrap_or_else(|error| panic!("no report ({error}):\n{printed}"));
    assert_eq!(report["mode"], "quick");
    let failover = &report["failover"];
    assert_eq!(failover["plan"]["calls"], 30_000, "{printed}");
    assert_eq!(failover["answered"], 30_000, "{printed}");
    let checks = failover["checks"].as_array().unwrap();
    assert!(checks.len() >= 7, "{printed}");
    for check in checks {
        assert_eq!(check["met"], true, "{check}\n{printed}");
    }
    let steps = report["scale"]["steps"].as_array().unwrap();
    let bridges: Vec<u64> = steps.iter().map(|step| step["bridges"].as_u64().unwrap()).collect();
    assert_eq!(bridges, [1, 1, 2, 3], "{printed}");
    for step in steps {
        assert_eq!(step["answered"], report["scale"]["plan"]["calls"], "{step}\n{printed}");
    }
    assert!(status.success(), "{status}:\n{printed}");
    println!("{printed}");
}
