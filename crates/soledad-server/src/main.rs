//! `soledad-server`: run and administer the Soledad server.
//!
//! Without a subcommand it serves, as the seed's `soledad-server` did.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("soledad-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}
