//! `soledad init`: open the account for the first time on this device and save
//! the profile.

use clap::Args;
use serde_json::json;

use crate::context::Context;
use crate::error::CliError;
use crate::output::{BOLD, Output};

/// Examples shown by `soledad init --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  # the first device makes the account's secret and uploads its encrypted backup
  SOLEDAD_TOKEN=$(soledad-server user add alice) \\
    soledad init --uuid alice --server https://127.0.0.1:2424 --cert-file cert.pem
  # another device with the same passphrase fetches that backup instead
  soledad --home ~/phone init --uuid alice --server https://127.0.0.1:2424 \\
    --token \"$TOKEN\" --cert-file cert.pem";

/// `soledad init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Do not save the token in the profile (give it as SOLEDAD_TOKEN each time).
    #[arg(long)]
    no_save_token: bool,
}

/// Opens (creating or bootstrapping) the account and saves the profile.
pub(crate) async fn run(ctx: &Context, args: &InitArgs) -> Result<Output, CliError> {
    let uuid = ctx.uuid()?.to_owned();
    ctx.create_home()?;
    let existed = ctx.secrets_path().exists();
    // A new passphrase is asked twice on a terminal: a typo would lock the account.
    let passphrase = ctx.passphrase(!existed)?;
    let soledad = ctx.builder(passphrase)?.open().await?;
    let profile = ctx.profile(!args.no_save_token)?;
    profile.save(&ctx.home)?;
    let secrets = if existed {
        "existing"
    } else if ctx.server.is_some() {
        "new or restored from the server backup"
    } else {
        "new (local only)"
    };
    let text = format!(
        "initialised {BOLD}{uuid}{BOLD:#} in {}\nreplica {}\nsecrets: {secrets}\n{}",
        ctx.home.display(),
        soledad.replica_uid(),
        if ctx.server.is_some() {
            "next: `soledad sync`"
        } else {
            "no server: documents stay on this device"
        }
    );
    let json = json!({
        "uuid": uuid,
        "home": ctx.home,
        "replica_uid": soledad.replica_uid(),
        "server": ctx.server,
        "token_saved": profile.token.is_some(),
        "secrets_existed": existed,
    });
    soledad.close().await?;
    Ok(Output::new(json, text))
}
