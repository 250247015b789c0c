//! The command line of the `soledad-server` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run and administer the Soledad server.
#[derive(Debug, Parser)]
#[command(name = "soledad-server", version, about, long_about = None)]
pub(crate) struct Args {
    /// Configuration file (INI, section [soledad-server]); default
    /// /etc/soledad/soledad-server.conf when it exists.
    #[arg(
        long,
        global = true,
        env = "SOLEDAD_SERVER_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub(crate) config: Option<PathBuf>,
    /// Data directory (overrides the config file's data_path); default
    /// $XDG_DATA_HOME/soledad-server or ~/.local/share/soledad-server.
    #[arg(
        long,
        global = true,
        env = "SOLEDAD_SERVER_DATA_PATH",
        value_name = "DIR"
    )]
    pub(crate) data_path: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the users API (TLS) and the local services API (the default).
    Serve,
    /// Manage users and their tokens.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage tokens of local services (the services tokens file).
    #[command(subcommand, name = "service-token")]
    ServiceToken(ServiceTokenCommand),
    /// Create the user database NAME (`user-<uuid>`), as soledad-create-userdb did.
    #[command(name = "create-userdb")]
    CreateUserDb {
        /// The database name, `user-<uuid>`.
        name: String,
    },
    /// Seal a message read from stdin to UUID's published incoming key and
    /// deliver it to their incoming box through the services API (for an MX
    /// to pipe into). Prints the message id.
    Deliver {
        /// The recipient's uuid.
        uuid: String,
        /// The message id (default: a random one).
        id: Option<String>,
        /// The service whose token (from the services tokens file) is used.
        #[arg(long, default_value = "incoming", value_name = "NAME")]
        service: String,
        /// The services API (default: from the configuration's services_address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Register a user and print their new token.
    Add {
        /// The user's uuid.
        uuid: String,
        /// Make the token expire after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u64>,
    },
    /// List users (uuid and token expiry).
    List,
    /// Remove a user (their token stops working at once).
    Remove {
        /// The user's uuid.
        uuid: String,
    },
    /// Replace a user's token and print the new one.
    Token {
        /// The user's uuid.
        uuid: String,
        /// Make the token expire after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceTokenCommand {
    /// Append a token for service NAME to the tokens file and print it.
    Add {
        /// The service name (e.g. `incoming`).
        name: String,
    },
}
