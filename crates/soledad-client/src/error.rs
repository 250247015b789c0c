//! The one error type of the client library.

use soledad_protocol::{ErrorKind, ProtocolError};
use soledad_store::StoreError;

/// Everything the client API can fail with.
///
/// Applications usually branch on a few kinds: [`Error::Store`] for document-level
/// errors (revision conflicts, missing documents, bad ids — u1db's errors),
/// [`Error::Auth`], [`Error::Network`] (retry later), and [`Error::Integrity`] (the
/// server sent data that does not authenticate: never retry silently).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local database error (u1db's error kinds: see [`StoreError`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A cryptographic operation failed locally (wrong passphrase, malformed secrets
    /// file, recovery code typo …).
    #[error(transparent)]
    Crypto(#[from] soledad_crypto::Error),
    /// The server refused the token (401), or the token belongs to another user (403).
    #[error("authentication refused by the server")]
    Auth,
    /// The server could not be reached or the connection broke; nothing was lost
    /// locally and the operation can be retried.
    #[error("network error: {0}")]
    Network(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Data received from the server failed authentication, or is a rollback to an
    /// older revision than the one held locally. The affected documents were not
    /// applied; every other document of the same sync was.
    #[error("integrity check failed for {count} document(s) received from the server")]
    Integrity {
        /// How many documents were refused.
        count: usize,
    },
    /// The server's history does not contain the position this device recorded for
    /// it (the server was restored from an older copy), or the server recorded a
    /// position of this device that this device does not have (this local database
    /// was restored from an older copy). Nothing was merged.
    #[error("sync refused: replica histories diverged ({0})")]
    Diverged(DivergedKind),
    /// The server answered with an error this request did not expect.
    #[error("server error {kind:?}: {message}")]
    Server {
        /// The error kind the server sent.
        kind: Option<ErrorKind>,
        /// The server's message.
        message: String,
    },
    /// The server's response is not well-formed.
    #[error("malformed response from the server: {0}")]
    Protocol(#[from] ProtocolError),
    /// A response body was longer than this client reads for its kind (a
    /// misbehaving or hostile server); nothing past the limit was read.
    #[error("response from the server exceeds {limit_bytes} bytes")]
    ResponseTooLarge {
        /// The limit for this kind of response.
        limit_bytes: u64,
    },
    /// No backup of the storage secret exists on the server for these credentials
    /// while the account already has data there: most likely a wrong passphrase
    /// (or use a recovery code). No new secret was made.
    #[error("no backup found on the server for these credentials")]
    BackupNotFound,
    /// The operation needs a server but the client was opened without one.
    #[error("no server configured")]
    NoServer,
    /// The certificate file to trust could not be used.
    #[error("unusable certificate file: {0}")]
    Certificate(&'static str),
    /// A local file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The client was closed (or its database thread stopped).
    #[error("client is closed")]
    Closed,
}

/// Which side's history is not what the other recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DivergedKind {
    /// A generation that the other side never had (`InvalidGeneration`).
    InvalidGeneration,
    /// A generation known with another transaction id (`InvalidTransactionId`).
    InvalidTransactionId,
}

impl std::fmt::Display for DivergedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DivergedKind::InvalidGeneration => "invalid generation",
            DivergedKind::InvalidTransactionId => "invalid transaction id",
        })
    }
}

impl From<soledad_store::WorkerStopped> for Error {
    fn from(_: soledad_store::WorkerStopped) -> Self {
        Error::Closed
    }
}

impl Error {
    pub(crate) fn network(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Network(Box::new(err))
    }

    /// Maps a server error body to the most specific client error.
    pub(crate) fn from_server(status: u16, kind: Option<ErrorKind>, message: String) -> Self {
        match kind {
            Some(ErrorKind::Unauthorized | ErrorKind::Forbidden) => Error::Auth,
            Some(ErrorKind::InvalidGeneration) => Error::Diverged(DivergedKind::InvalidGeneration),
            Some(ErrorKind::InvalidTransactionId) => {
                Error::Diverged(DivergedKind::InvalidTransactionId)
            }
            _ if status == 401 || status == 403 => Error::Auth,
            _ => Error::Server { kind, message },
        }
    }
}
