//! `soledad passphrase change`, `soledad recovery-code create`, `soledad recover`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use soledad_client::RecoveryCode;
use soledad_client::SecretString;

use crate::context::Context;
use crate::error::CliError;
use crate::output::Output;
use crate::passphrase::{self, Source};

/// Examples shown by `soledad passphrase --help`.
pub(crate) const PASSPHRASE_EXAMPLES: &str = "\
Examples:
  soledad passphrase change      # asks for the old one, then the new one twice
  SOLEDAD_PASSPHRASE=old SOLEDAD_NEW_PASSPHRASE=new soledad passphrase change";

/// Examples shown by `soledad recovery-code --help`.
pub(crate) const RECOVERY_CODE_EXAMPLES: &str = "\
Example:
  soledad recovery-code create   # write the code down; keep it offline";

/// Examples shown by `soledad recover --help`.
pub(crate) const RECOVER_EXAMPLES: &str = "\
Example (on a new device, or after forgetting the passphrase; empty home):
  soledad --home ~/new recover --uuid alice \\
    --server https://127.0.0.1:2424 --token \"$TOKEN\" --cert-file cert.pem
  # asks for the recovery code, then the new passphrase twice
  # (or SOLEDAD_RECOVERY_CODE / --recovery-code-file, SOLEDAD_NEW_PASSPHRASE / --new-passphrase-file)";

/// The `passphrase` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PassphraseCommand {
    /// Change the passphrase: the secrets file is re-wrapped and the server backup
    /// moved to the new passphrase; nothing is re-encrypted.
    #[command(after_help = PASSPHRASE_EXAMPLES)]
    Change(NewPassphraseArgs),
}

/// Where a new passphrase comes from.
#[derive(Debug, Args)]
pub(crate) struct NewPassphraseArgs {
    /// Read the new passphrase from the first line of FILE (else
    /// $SOLEDAD_NEW_PASSPHRASE, else a prompt asking twice).
    #[arg(long, env = "SOLEDAD_NEW_PASSPHRASE_FILE", value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
}

impl NewPassphraseArgs {
    fn read(&self) -> Result<SecretString, CliError> {
        Source {
            file: self.new_passphrase_file.as_deref(),
            var: passphrase::NEW_PASSPHRASE_VAR,
            prompt: "New passphrase: ",
            confirm: true,
            what: "new passphrase",
            file_option: "--new-passphrase-file",
        }
        .read()
    }
}

/// The `recovery-code` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum RecoveryCodeCommand {
    /// Make a recovery code and store the secret wrapped under it on the server;
    /// prints the code (the only copy).
    #[command(after_help = RECOVERY_CODE_EXAMPLES)]
    Create,
}

/// `soledad recover`.
#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// Read the recovery code from the first line of FILE (else
    /// $SOLEDAD_RECOVERY_CODE, else a prompt).
    #[arg(long, env = "SOLEDAD_RECOVERY_CODE_FILE", value_name = "FILE")]
    recovery_code_file: Option<PathBuf>,
    #[command(flatten)]
    new_passphrase: NewPassphraseArgs,
    /// Do not save the token in the profile.
    #[arg(long)]
    no_save_token: bool,
}

/// Runs `soledad passphrase change`.
pub(crate) async fn passphrase(
    ctx: &Context,
    command: &PassphraseCommand,
) -> Result<Output, CliError> {
    let PassphraseCommand::Change(args) = command;
    ctx.require_initialised()?;
    let old = ctx.passphrase(false)?;
    let soledad = ctx.builder(old.clone())?.open().await?;
    let new = args.read()?;
    let result = soledad.change_passphrase(&old, &new).await;
    soledad.close().await?;
    result?;
    Ok(Output::new(
        json!({"changed": true, "server_backup": ctx.server.is_some()}),
        "passphrase changed",
    ))
}

/// Runs `soledad recovery-code create`.
pub(crate) async fn recovery_code(
    ctx: &Context,
    command: &RecoveryCodeCommand,
) -> Result<Output, CliError> {
    let RecoveryCodeCommand::Create = command;
    let soledad = ctx.open().await?;
    let result = soledad.create_recovery_code().await;
    soledad.close().await?;
    let code = result?;
    let text = code.expose_text();
    Ok(Output::new(
        json!({"recovery_code": text.as_str()}),
        text.as_str(),
    ))
}

/// Runs `soledad recover`: sets this home up from the server with a recovery
/// code; the new passphrase replaces the old one everywhere.
pub(crate) async fn recover(ctx: &Context, args: &RecoverArgs) -> Result<Output, CliError> {
    if ctx.secrets_path().exists() {
        return Err(CliError::usage(format!(
            "{} already holds a secrets file: recover into an empty --home",
            ctx.home.display()
        )));
    }
    if ctx.server.is_none() {
        return Err(CliError::usage(
            "recover needs the server: pass --server, --token and --cert-file",
        ));
    }
    let uuid = ctx.uuid()?.to_owned();
    let code_text = Source {
        file: args.recovery_code_file.as_deref(),
        var: passphrase::RECOVERY_CODE_VAR,
        prompt: "Recovery code: ",
        confirm: false,
        what: "recovery code",
        file_option: "--recovery-code-file",
    }
    .read()?;
    let code = RecoveryCode::parse(secrecy::ExposeSecret::expose_secret(&code_text))
        .map_err(soledad_client::Error::from)?;
    let new = args.new_passphrase.read()?;
    ctx.create_home()?;
    let soledad = ctx.builder(new)?.recovery_code(code).open().await?;
    let replica = soledad.replica_uid().to_owned();
    soledad.close().await?;
    ctx.profile(!args.no_save_token)?.save(&ctx.home)?;
    Ok(Output::new(
        json!({"uuid": uuid, "home": ctx.home, "replica_uid": replica, "recovered": true}),
        format!(
            "recovered {uuid} in {}; the new passphrase is set (next: `soledad sync`)",
            ctx.home.display()
        ),
    ))
}
