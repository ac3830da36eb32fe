//! `skillbridge-cluster`: several bridges as one service, against a real `redis-server` and the codex-manager double,
//! all processes on loopback (issue 14).
//!
//! - **failover**: three bridges of one group, eight sessions, 30,000 calls of a 5 ms skill; one bridge SIGKILLed
//!   mid-burst, Redis restarted once for 2 s; every call answered exactly once, none run twice on a bridge that
//!   lived, the killed bridge's calls in flight run once more elsewhere (see `failover.rs`).
//! - **scale**: a 50 ms skill, `--concurrency 16` per bridge: one bridge on its own, then one, two and three bridges
//!   of a group; calls/s, latency and the cost of the claims, as a table (see `scale.rs`). The full run checks that
//!   N bridges serve at least 0.8 × N times one bridge's calls/s; the quick one only prints the table.
//!
//! `cargo run --release -p skillbridge-bench --bin skillbridge-cluster` builds the binaries (release), runs both and
//! writes `bench/results/cluster.json` and `cluster.md`. `--quick` keeps the failover run whole and makes the scale
//! run smaller, for a debug build in CI (the test `cluster_smoke` does). Exits 1 when a check fails.

mod failover;
mod group;
mod report;
mod scale;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use skillbridge_bench::clients::Bins;
use skillbridge_bench::process::raise_fd_limit;

use crate::group::Ctx;
use crate::report::Report;

/// The full scale run's goal: N bridges of a group serve at least this share of N times one bridge's calls/s.
const MIN_SCALING: f64 = 0.8;

/// Runs several bridges as one group over Redis against the codex-manager double.
#[derive(Debug, Parser)]
#[command(name = "skillbridge-cluster")]
struct Args {
    /// A smaller scale run (the failover run stays whole), for a debug build in CI.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (a Markdown version goes next to it, `.md`). Default:
    /// bench/results/cluster.json, or a temporary file with --quick.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Where the benchmark binaries are. Default: the directory of this executable.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for the benchmark binaries first.
    #[arg(long)]
    no_build: bool,
    /// Run only the failover run, or only the scale run.
    #[arg(long, value_name = "RUN", value_parser = ["failover", "scale"])]
    only: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("skillbridge-cluster: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let bins = Bins::ready(args.bin_dir, !args.no_build)?;
    let out = args.out.unwrap_or_else(|| {
        if args.quick {
            std::env::temp_dir().join(format!("skillbridge-cluster-quick-{}.json", std::process::id()))
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results/cluster.json")
        }
    });
    raise_fd_limit()?;
    let log_dir = std::env::temp_dir().join(format!("skillbridge-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    println!("logs of the processes: {}", log_dir.display());
    let ctx = Ctx { bins, log_dir };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let failover = match args.only.as_deref() {
            Some("scale") => None,
            _ => {
                println!("failover: 3 bridges, 8 sessions, one bridge killed, Redis restarted");
                Some(failover::run(&ctx, failover::Plan::new()).await?)
            }
        };
        let scale = match args.only.as_deref() {
            Some("failover") => None,
            _ => {
                println!("scale: 1, 2 and 3 bridges, a 50 ms skill, --concurrency 16 each");
                let plan = if args.quick {
                    scale::Plan::new(800, None)
                } else {
                    scale::Plan::new(8_000, Some(MIN_SCALING))
                };
                Some(scale::run(&ctx, plan).await?)
            }
        };
        anyhow::Ok(Report {
            mode: if args.quick { "quick" } else { "full" },
            failover,
            scale,
        })
    })?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    let markdown = out.with_extension("md");
    std::fs::write(&markdown, report.markdown()).with_context(|| format!("writing {}", markdown.display()))?;
    println!("\n{}", report.text());
    println!("written: {} and {}", out.display(), markdown.display());
    Ok(if report.met() {
        ExitCode::SUCCESS
    } else {
        eprintln!("skillbridge-cluster: a check failed (see above)");
        ExitCode::FAILURE
    })
}
