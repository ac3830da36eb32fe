//! The harness end to end with `--quick` (tiny counts) against the debug binaries `cargo test` just built, so it
//! cannot rot unnoticed: every workload runs, every call is answered, and the JSON and Markdown reports are written.
//! The figures of a debug build mean nothing; only their presence is checked. The full run is
//! `cargo run --release -p skillbridge-bench`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use skillbridge_bench::process::run_quick;

/// The whole quick run takes a few seconds; this only stops a hung harness.
const DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn a_quick_run_measures_every_workload_and_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("skillbridge-bench-smoke-{}", std::process::id()));
    let out = dir.join("quick.json");
    let program = PathBuf::from(env!("CARGO_BIN_EXE_skillbridge-bench"));
    let (status, printed) = run_quick(&program, &dir, "quick.json", DEADLINE).unwrap();
    assert!(status.success(), "the quick run failed ({status}):\n{printed}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let w1 = report["w1"].as_array().unwrap();
    let clients: Vec<&str> = w1.iter().map(|s| s["client"].as_str().unwrap()).collect();
    assert_eq!(
        clients,
        [
            "floor",
            "bridge",
            "bridge",
            "bridge",
            "floor",
            "bridge",
            "journaled",
            "journaled"
        ]
    );
    assert_eq!((&w1[4]["outstanding"], &w1[7]["outstanding"]), (&1.into(), &1.into()));
    assert_eq!(w1[3]["skill"], "bounded_order");
    assert!(
        report["validation"]["cpu_us_per_call"].is_number(),
        "{}",
        report["validation"]
    );
    let series: Vec<&Value> = w1.iter().chain([&report["w2"], &report["w4"]["series"]]).collect();
    for s in &series {
        assert_eq!(s["complete"], true, "{s}");
        assert!(s["calls_per_sec"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["latency_us"]["p99"].as_u64().unwrap() > 0, "{s}");
        let calls = s["calls"].as_u64().unwrap();
        assert!(
            s["rounds"].as_array().unwrap().iter().all(|r| r["answered"] == calls),
            "{s}"
        );
    }
    // The bridge counted every call it ran as a success.
    for s in series
        .iter()
        .filter(|s| s["client"] != "floor" && s["client"] != "blocking")
    {
        let rounds = s["rounds"].as_array().unwrap().len() as u64;
        assert_eq!(
            s["outcomes"]["success"].as_u64(),
            Some(s["calls"].as_u64().unwrap() * rounds),
            "{s}"
        );
    }
    let bridge = report["w3"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["client"] == "bridge")
        .unwrap();
    assert!(bridge["idle_rss_kib"].as_u64().unwrap() > 0);
    assert!(bridge["peak_rss_kib"].as_u64().unwrap() >= bridge["idle_rss_kib"].as_u64().unwrap());
    assert_eq!(bridge["start_to_ready_ms"].as_array().unwrap().len(), 2);
    assert!(report["machine"]["nproc"].as_u64().unwrap() > 0);
    assert_eq!(report["targets"].as_array().unwrap().len(), 6);

    let markdown = std::fs::read_to_string(PathBuf::from(&out).with_extension("md")).unwrap();
    assert!(markdown.contains("| W1 noop"), "{markdown}");
    assert!(printed.contains("W2 sleep_50ms"), "{printed}");
    assert!(
        report["journal"]["throughput_ratio"].as_f64().unwrap() > 0.0,
        "{}",
        report["journal"]
    );
    assert!(markdown.contains("Journal (`serve --journal`)"), "{markdown}");
    std::fs::remove_dir_all(&dir).unwrap();
}
