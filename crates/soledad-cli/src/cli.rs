//! The command line: global options and the command tree (clap derive). Each
//! command's own arguments live in its module under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::{blob, doc, generate, incoming, index, init, secrets, sync};

const ABOUT: &str = "Soledad: your JSON documents, encrypted on this device, synchronised \
through a server that only ever sees ciphertext.";

const EXAMPLES: &str = "\
Examples:
  soledad demo                                  # a server and two devices, in-process
  soledad init --uuid alice --server https://soledad.example:2424 \\
      --token \"$TOKEN\" --cert-file provider.pem  # once per device
  soledad doc create '{\"name\": \"Ada\"}'
  soledad sync
  soledad sync --live                           # keep syncing, print events until Ctrl-C
  soledad --json doc list | jq '.docs[].content'

The passphrase comes from $SOLEDAD_PASSPHRASE, --passphrase-file or a prompt on the
terminal; every option can also be set as SOLEDAD_<OPTION> (e.g. SOLEDAD_HOME).
Exit status: 0 ok, 1 other error, 2 usage, 3 not found, 4 conflict,
5 authentication (wrong passphrase, bad token), 6 integrity (tampering detected).";

/// The `soledad` command line.
#[derive(Debug, Parser)]
#[command(name = "soledad", version, about = ABOUT, after_help = EXAMPLES)]
#[command(propagate_version = true, subcommand_required = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes; values not given fall back to the profile that
/// `soledad init` saved in the home directory.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Directory holding this device's secrets file, local database and profile
    /// [default: $XDG_DATA_HOME/soledad or ~/.local/share/soledad].
    #[arg(long, global = true, env = "SOLEDAD_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// The user's id on the server.
    #[arg(long, global = true, env = "SOLEDAD_UUID", value_name = "UUID")]
    pub(crate) uuid: Option<String>,
    /// The server's base URL (https://host:2424).
    #[arg(long, global = true, env = "SOLEDAD_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// The user's token for the server (prefer SOLEDAD_TOKEN: flags are visible to
    /// other local users).
    #[arg(
        long,
        global = true,
        env = "SOLEDAD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// PEM certificate to trust for the server (the provider's certificate).
    #[arg(long, global = true, env = "SOLEDAD_CERT_FILE", value_name = "FILE")]
    pub(crate) cert_file: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE (else $SOLEDAD_PASSPHRASE,
    /// else a prompt on the terminal).
    #[arg(
        long,
        global = true,
        env = "SOLEDAD_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Print exactly one JSON value on stdout; errors go to stderr as
    /// {"error": kind, "message": text}.
    #[arg(long, global = true, env = "SOLEDAD_JSON")]
    pub(crate) json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Set up this device: open the account (new, or bootstrapped from the
    /// server's encrypted backup) and save a profile so later commands need no flags.
    #[command(after_help = init::EXAMPLES)]
    Init(init::InitArgs),
    /// Create, read, update, delete documents; list and resolve conflicts.
    #[command(subcommand, after_help = doc::EXAMPLES)]
    Doc(doc::DocCommand),
    /// Create and query indexes over documents.
    #[command(subcommand, after_help = index::EXAMPLES)]
    Index(index::IndexCommand),
    /// Store, fetch, flag, list and sync blobs (binary data, encrypted here).
    #[command(subcommand, after_help = blob::EXAMPLES)]
    Blob(blob::BlobCommand),
    /// Attach a file to a document, fetch, delete it or show where it is.
    #[command(subcommand, after_help = blob::ATTACHMENT_EXAMPLES)]
    Attachment(blob::AttachmentCommand),
    /// Publish the incoming key; process delivered mail into documents.
    #[command(subcommand, after_help = incoming::EXAMPLES)]
    Incoming(incoming::IncomingCommand),
    /// Synchronise with the server (progress bar on a terminal); with --live,
    /// keep syncing as changes happen and print each event.
    #[command(after_help = sync::EXAMPLES)]
    Sync(sync::SyncArgs),
    /// Show this device's account: generation, documents, indexes, last sync.
    #[command(after_help = "Example:\n  soledad --json status | jq .generation")]
    Status,
    /// Change the passphrase (locally and in the server backup).
    #[command(subcommand, after_help = secrets::PASSPHRASE_EXAMPLES)]
    Passphrase(secrets::PassphraseCommand),
    /// Make a recovery code (write it down: it can replace a forgotten passphrase).
    #[command(subcommand, name = "recovery-code", after_help = secrets::RECOVERY_CODE_EXAMPLES)]
    RecoveryCode(secrets::RecoveryCodeCommand),
    /// Set up this device with a recovery code instead of the passphrase, and
    /// choose a new passphrase.
    #[command(after_help = secrets::RECOVER_EXAMPLES)]
    Recover(secrets::RecoverArgs),
    /// Run a server and two devices in-process on loopback: documents, an index
    /// query, a conflict and its resolution. Leaves nothing behind.
    #[command(after_help = "Example:\n  soledad demo")]
    Demo,
    /// Print a shell completion script.
    #[command(after_help = generate::COMPLETIONS_EXAMPLES)]
    Completions(generate::CompletionsArgs),
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  soledad man > soledad.1 && man ./soledad.1")]
    Man,
}
