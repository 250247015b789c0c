//! The CLI's error: the client library's typed error, or what the CLI itself
//! finds wrong (usage, a missing document, local files).

use std::io;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The client library failed.
    #[error(transparent)]
    Client(#[from] soledad_client::Error),
    /// The command line or the environment does not say enough (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A document asked for by id does not exist (exit 3).
    #[error("document {0:?} does not exist")]
    DocumentNotFound(String),
    /// A local file or stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The in-process server of `soledad demo` failed.
    #[error("demo server: {0}")]
    DemoServer(#[from] soledad_server::Error),
    /// The demo's devices ended in a state the demo did not expect.
    #[error("demo: {0}")]
    Demo(String),
}

impl From<soledad_client::StoreError> for CliError {
    fn from(err: soledad_client::StoreError) -> Self {
        CliError::Client(err.into())
    }
}

impl CliError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> CliError {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// A usage error.
    pub(crate) fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }

    /// Whether this is stdout closed by the reader (ends the program quietly).
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The message for people: the error and its causes, one line.
    pub(crate) fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        // `#[error(transparent)]` already printed the client error itself.
        if matches!(self, CliError::Client(_)) {
            source = source.and_then(std::error::Error::source);
        }
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        if let CliError::Client(soledad_client::Error::Network(err)) = self {
            let mut root: &dyn std::error::Error = err.as_ref();
            while let Some(cause) = root.source() {
                root = cause;
            }
            message = format!(
                "cannot reach the server: {root}; is it running, and is the URL right? \
                 ({message})"
            );
        }
        message
    }
}
