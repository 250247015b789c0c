//! `soledad`: the command-line client of Soledad, for people and for scripts.
//!
//! `main` parses the arguments, [`run`] does the work and returns the result to
//! print, and the exit status comes from one table ([`exit::classify`]). Stdout
//! carries only the result (one JSON value with `--json`); progress, prompts and
//! errors go to stderr; a closed stdout (`soledad doc list | head -1`) ends the
//! program quietly.

mod cli;
mod commands;
mod context;
mod error;
mod exit;
mod output;
mod passphrase;
mod profile;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::Cli;
use crate::error::CliError;
use crate::output::Output;

fn main() -> ExitCode {
    let json = output::json_requested();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return output::usage_error(&err, json),
    };
    let json = cli.global.json;
    install_logging();
    match run(cli) {
        Ok(out) => match out.print(json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(err) => output::report_error(&CliError::io("writing to stdout", err), json),
        },
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => output::report_error(&err, json),
    }
}

/// Runs the parsed command on a tokio runtime and returns what to print.
fn run(cli: Cli) -> Result<Output, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    let result = runtime.block_on(commands::dispatch(cli));
    // Flush what a command streamed (the demo's narration) before the result.
    let _ = std::io::stdout().flush();
    result
}

/// Logs go to stderr, off unless `SOLEDAD_LOG` (e.g. `debug`) asks for them, so
/// that stderr holds only the error in `--json` mode.
fn install_logging() {
    let Ok(filter) = std::env::var("SOLEDAD_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::new(filter);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
