//! `skillbridge-bench`: what one tool call through the bridge costs, how many per second, and how close that is to
//! the floor, measured against the codex-manager double on loopback.
//!
//! `cargo run --release -p skillbridge-bench` builds the benchmark's binaries (release), runs every workload,
//! prints the table and writes it to `bench/results/latest.json` and `latest.md`. `--quick` runs tiny counts in a
//! few seconds (the smoke test does, against a debug build).
//!
//! Processes: the double (`bench-double`, the double's standalone binary), the floor client (`bench-floor`), the
//! bridge (`bench-bridge serve`, skillbridge's CLI with the benchmark skills) and the blocking-path client
//! (`bench-blocking`). Every call is issued and timed by the double's burst control. The processes, `/proc` and
//! the double's controls are the package's library, shared with `skillbridge-faults`; the workloads (`run.rs`)
//! and the report (`report.rs`) are this binary's.

mod report;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use skillbridge_bench::clients::Bins;

use crate::run::Plan;

/// Benchmarks the skillbridge bridge against the codex-manager double, next to a floor client.
#[derive(Debug, Parser)]
#[command(name = "skillbridge-bench")]
struct Args {
    /// Tiny counts (a few seconds): checks that every step works, measures nothing worth keeping.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (a Markdown table goes next to it, `.md`). Default:
    /// bench/results/latest.json, or a temporary file with --quick.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Where the benchmark binaries are. Default: the directory of this executable.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for the benchmark binaries first.
    #[arg(long)]
    no_build: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("skillbridge-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let bins = Bins::ready(args.bin_dir, !args.no_build)?;
    let plan = if args.quick { Plan::quick() } else { Plan::full() };
    let out = args.out.unwrap_or_else(|| {
        if args.quick {
            std::env::temp_dir().join(format!("skillbridge-bench-quick-{}.json", std::process::id()))
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results/latest.json")
        }
    });
    let log_dir = std::env::temp_dir().join(format!("skillbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    println!("logs of the processes: {}", log_dir.display());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(run::run(&plan, &bins, &log_dir))?;

    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    let markdown = out.with_extension("md");
    std::fs::write(&markdown, report.markdown()).with_context(|| format!("writing {}", markdown.display()))?;
    println!("\n{}", report.text());
    println!("written: {} and {}", out.display(), markdown.display());
    let answered_all = report.targets.last().is_some_and(|t| t.met);
    Ok(if answered_all {
        ExitCode::SUCCESS
    } else {
        eprintln!("skillbridge-bench: some calls were not answered, or not successfully (see the table)");
        ExitCode::FAILURE
    })
}
