//! `soledad completions SHELL` and `soledad man`: generated from the clap
//! definition, printed to stdout.

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;
use serde_json::Value;

use crate::cli::Cli;
use crate::error::CliError;
use crate::output::Output;

/// Examples shown by `soledad completions --help`.
pub(crate) const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  soledad completions bash > ~/.local/share/bash-completion/completions/soledad
  soledad completions zsh > ~/.zfunc/_soledad
  soledad completions fish > ~/.config/fish/completions/soledad.fish";

/// `soledad completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

/// Prints the completion script (with `--json`: as one JSON string).
pub(crate) fn completions(args: &CompletionsArgs) -> Result<Output, CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "soledad", &mut script);
    text_output(script)
}

/// Prints the man page in roff (with `--json`: as one JSON string).
pub(crate) fn man() -> Result<Output, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| CliError::io("rendering the man page", e))?;
    text_output(page)
}

fn text_output(bytes: Vec<u8>) -> Result<Output, CliError> {
    let text = String::from_utf8(bytes)
        .map_err(|e| CliError::io("generating text", std::io::Error::other(e)))?;
    Ok(Output::new(Value::String(text.clone()), text))
}
