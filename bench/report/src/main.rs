//! `bench-report`: measures Soledad next to its raw floor (AES-256-GCM + a plain
//! SQLite write of the same bytes, in this process) and its peer (PouchDB through
//! pouchdb-server, plain and with ComDB, run by `bench/peer/peer.js`), and writes
//! `docs/benchmarks.md`, its plots (SVG under `docs/benchmarks/`) and the README's
//! generated benchmark block (between `<!-- bench-report:begin -->` and
//! `<!-- bench-report:end -->`).
//!
//! Soledad runs for real: a `soledad-server` on 127.0.0.1 (in this process, on a
//! runtime of its own) and devices through the public `soledad-client` API, each
//! with its own SQLCipher store in a temporary directory.
//!
//! `scripts/bench-report` is the command a user runs (it installs the peer); this
//! binary alone runs without the peer unless given `--peer-script`. `--smoke` runs
//! every scenario on tiny inputs in a few seconds (the smoke test does).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

mod floor;
mod machine;
mod peer;
mod plot;
mod report;
mod results;
mod scenarios;
mod soledad;
mod workload;

/// Measure Soledad next to its raw floor and its peer; write the report and plots.
#[derive(Debug, Parser)]
#[command(name = "bench-report")]
struct Args {
    /// Tiny inputs, one run each, no peer: checks the generator in seconds.
    #[arg(long)]
    smoke: bool,
    /// Runs per figure (the median is reported); the largest inputs run once.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The largest store of the document-count curve (1 KB documents).
    #[arg(long, default_value_t = 100_000)]
    max_docs: usize,
    /// The largest blob of the blob curve, in MiB.
    #[arg(long, default_value_t = 1024)]
    max_blob_mib: u64,
    /// `peer.js` of `bench/peer`, with its npm packages installed beside it
    /// (`scripts/bench-report` does that); without it the peer is not run.
    #[arg(long)]
    peer_script: Option<PathBuf>,
    /// A file of JSON lines from other harnesses (e.g. the live sync bench's
    /// `{"scenario":"live_latency",...}`) to put into the report's tables.
    #[arg(long)]
    extra_json: Option<PathBuf>,
    /// Where `benchmarks.md` and `benchmarks/*.svg` are written.
    #[arg(long, default_value = "docs")]
    out_dir: PathBuf,
    /// The README whose generated block is replaced (must hold the markers).
    #[arg(long, default_value = "README.md")]
    readme: PathBuf,
    /// Leave the README alone.
    #[arg(long)]
    no_readme: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The server's and client's logs, to stderr, when RUST_LOG asks for them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-report: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = if args.smoke {
        scenarios::Plan::smoke()
    } else {
        scenarios::Plan::full(args.runs, args.max_docs, args.max_blob_mib)
    };
    let machine = machine::Machine::read();
    eprintln!("bench-report: {}", machine.summary());
    let mut results = scenarios::run_soledad(&plan)?;
    if let Some(script) = &args.peer_script {
        eprintln!("bench-report: peer ({})", script.display());
        results.peer = peer::run(script, plan.runs)?;
    }
    if let Some(file) = &args.extra_json {
        results.extra = peer::read_lines(&std::fs::read_to_string(file)?)?;
    }
    results.total_seconds = started.elapsed().as_secs_f64();
    let written = report::write(&results, &machine, &plan, &args.out_dir)?;
    if !args.no_readme {
        report::update_readme(&args.readme, &results, &machine)?;
    }
    eprintln!(
        "bench-report: wrote {} and {} plots in {:.0} s",
        written.markdown.display(),
        written.plots.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
