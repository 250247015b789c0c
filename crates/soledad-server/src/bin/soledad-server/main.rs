//! `soledad-server`: run and administer the Soledad server.
//!
//! Without a subcommand it serves, as the seed's `soledad-server` did. The
//! binary only parses arguments, reads the configuration file and the
//! environment, installs the logging subscriber, calls the library and maps
//! the outcome to an exit code; everything else is in `soledad_server`.

mod admin;
mod args;
mod deliver;
mod load;
mod serve;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Args, Command, ServiceTokenCommand};

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("soledad-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration and runs the command.
fn run(args: Args) -> anyhow::Result<()> {
    let serving = matches!(args.command, None | Some(Command::Serve));
    load::init_logging(serving);
    let config = load::config(args.config.as_deref(), args.data_path)?;
    match args.command {
        None | Some(Command::Serve) => serve::run(config),
        Some(Command::User(command)) => admin::user(&config, command),
        Some(Command::ServiceToken(ServiceTokenCommand::Add { name })) => {
            admin::service_token_add(&config, &name)
        }
        Some(Command::CreateUserDb { name }) => admin::create_userdb(&config, &name),
        Some(Command::Deliver {
            uuid,
            id,
            service,
            url,
        }) => deliver::run(&config, &uuid, id.as_deref(), &service, url.as_deref()),
    }
}
