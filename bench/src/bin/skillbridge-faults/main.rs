//! `skillbridge-faults`: the fault suite of issue 10. Each row starts the codex-manager double (checking that every
//! answer names its own call) and the bridge (`bench-bridge serve`, skillbridge's CLI with the bench skills) as
//! processes on loopback, applies one fault while calls run (load, a descriptor limit, idle admin connections,
//! dropped sockets, failing answers, an upstream restart, a SIGKILLed bridge, bad input), and judges what it measured:
//! calls answered exactly once, lost, answered twice or misdelivered, skills run again, calls/s, and the bridge's
//! peak memory, descriptors and sockets to the double.
//!
//! `cargo run --release -p skillbridge-bench --bin skillbridge-faults` builds the binaries (release), runs every row,
//! prints the tables and writes `bench/results/faults.json` and `faults.md`. `--quick` runs every row with counts
//! about fifty times smaller, in well under a minute on a debug build (the test `faults_smoke` does). Exits 1 when a
//! row misses a threshold.

mod admin;
mod plan;
mod report;
mod rig;
mod rows;
mod sampler;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use skillbridge_bench::clients::Bins;
use skillbridge_bench::process::raise_fd_limit;
use skillbridge_bench::procfs::Machine;

use crate::plan::Plan;
use crate::report::Report;
use crate::rig::Ctx;

/// Runs the bridge through faults against the codex-manager double and judges how it copes.
#[derive(Debug, Parser)]
#[command(name = "skillbridge-faults")]
struct Args {
    /// Counts about fifty times smaller (every row still runs), for a debug build in CI; the correctness thresholds
    /// stay as strict, the memory and speed ones are looser.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (a Markdown table goes next to it, `.md`). Default:
    /// bench/results/faults.json, or a temporary file with --quick.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Where the benchmark binaries are. Default: the directory of this executable.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for the benchmark binaries first.
    #[arg(long)]
    no_build: bool,
    /// Run only these rows (e.g. `--rows 1,7`; `7` is both 7a and 7b). Default: every row.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    rows: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("skillbridge-faults: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let bins = Bins::ready(args.bin_dir, !args.no_build)?;
    let plan = if args.quick { Plan::quick() } else { Plan::full() };
    let out = args.out.unwrap_or_else(|| {
        if args.quick {
            std::env::temp_dir().join(format!("skillbridge-faults-quick-{}.json", std::process::id()))
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results/faults.json")
        }
    });
    // Row 3 holds thousands of connections open from this process.
    let fd_limit = raise_fd_limit()?;
    let log_dir = std::env::temp_dir().join(format!("skillbridge-faults-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    println!("logs of the processes: {} (fd limit {fd_limit})", log_dir.display());

    let machine = Machine::detect();
    let mode = plan.mode;
    let ctx = Ctx { plan, bins, log_dir };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rows = runtime.block_on(rows::run_all(&ctx, &args.rows));
    let report = Report {
        mode,
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_s: started.elapsed().as_secs_f64(),
        machine,
        rows,
    };

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
        eprintln!("skillbridge-faults: some rows missed their thresholds (see the table)");
        ExitCode::FAILURE
    })
}
