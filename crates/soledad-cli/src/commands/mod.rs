//! One module per command, each a thin layer over `soledad-client`.

pub(crate) mod blob;
pub(crate) mod demo;
pub(crate) mod doc;
pub(crate) mod generate;
pub(crate) mod incoming;
pub(crate) mod index;
pub(crate) mod init;
pub(crate) mod live;
pub(crate) mod secrets;
pub(crate) mod status;
pub(crate) mod sync;

use std::io::Read as _;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::error::CliError;
use crate::output::Output;

/// Largest JSON document read from stdin.
const MAX_STDIN_BYTES: u64 = 64 << 20;

/// Runs the command.
pub(crate) async fn dispatch(cli: Cli) -> Result<Output, CliError> {
    let json = cli.global.json;
    // Commands that need no account.
    match cli.command {
        Command::Demo => return demo::run(json).await,
        Command::Completions(args) => return generate::completions(&args),
        Command::Man => return generate::man(),
        _ => {}
    }
    let ctx = Context::resolve(&cli.global)?;
    match cli.command {
        Command::Init(args) => init::run(&ctx, &args).await,
        Command::Doc(command) => doc::run(&ctx, command).await,
        Command::Index(command) => index::run(&ctx, command).await,
        Command::Sync(args) if args.live => live::run(&ctx, &args, json).await,
        Command::Sync(_) => sync::run(&ctx).await,
        Command::Blob(command) => blob::run(&ctx, command).await,
        Command::Attachment(command) => blob::run_attachment(&ctx, command).await,
        Command::Status => status::run(&ctx).await,
        Command::Incoming(command) => incoming::run(&ctx, command).await,
        Command::Passphrase(command) => secrets::passphrase(&ctx, &command).await,
        Command::RecoveryCode(command) => secrets::recovery_code(&ctx, &command).await,
        Command::Recover(args) => secrets::recover(&ctx, &args).await,
        Command::Demo | Command::Completions(_) | Command::Man => {
            Err(CliError::usage("unreachable command"))
        }
    }
}

/// JSON text from an argument, or from stdin when it is absent or `-`.
pub(crate) fn json_argument(arg: Option<&str>) -> Result<String, CliError> {
    match arg {
        Some(text) if text != "-" => Ok(text.to_owned()),
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_STDIN_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| CliError::io("reading JSON from stdin", e))?;
            Ok(text.trim_end().to_owned())
        }
    }
}
