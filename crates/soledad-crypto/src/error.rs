//! The one error type of this crate.
//!
//! Tampering of any kind (bad tag, wrong document id or revision, a truncated,
//! extended or reordered blob stream) is reported as [`Error::Integrity`], with no
//! detail on which check failed, so that no caller can become an oracle.
//! Malformed or unknown-version input has its own variants, so that a client can
//! tell "this data was made by a newer version" from "this data was tampered with".

use std::io;

/// Everything that can go wrong in `soledad-crypto`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authentication failed: wrong key, wrong document id / revision / blob id,
    /// bit flip, truncation, extension, reordering or segment swap.
    /// Deliberately silent on which check failed.
    #[error("integrity check failed: the data was tampered with or does not belong here")]
    Integrity,
    /// The passphrase does not unlock the secrets (or the wrapped secrets were altered).
    #[error("wrong passphrase, or the secrets were altered")]
    WrongPassphrase,
    /// The recovery code does not unlock this backup (or the backup was altered).
    #[error("wrong recovery code, or the recovery backup was altered")]
    WrongRecoveryCode,
    /// The input is not in the expected format (bad magic, bad length, bad field).
    #[error("malformed {what}")]
    Malformed {
        /// Which format was being parsed (`"document envelope"`, `"blob preamble"`, …).
        what: &'static str,
    },
    /// The input declares a format version this build does not know.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// Which format declared it.
        what: &'static str,
        /// The version found.
        version: u64,
    },
    /// The secrets file names a key-derivation function this build does not know.
    #[error("unsupported key-derivation function")]
    UnsupportedKdf,
    /// The secrets file or blob preamble names a cipher or method this build does not know.
    #[error("unsupported cipher or method")]
    UnsupportedCipher,
    /// The blob preamble names a scheme this build does not know.
    #[error("unsupported blob scheme")]
    UnsupportedScheme,
    /// The blob is an `external` one (delivered by a third party, e.g. OpenPGP):
    /// it is handed to its consumer as is and cannot be decrypted with the blob key.
    #[error("external blob: not encrypted with the blob key")]
    ExternalBlob,
    /// scrypt parameters are invalid or exceed the cost caps
    /// (attacker-chosen parameters must not buy hours of work or gigabytes of memory).
    #[error("scrypt parameters rejected (log_n={log_n}, r={r}, p={p})")]
    KdfParamsRejected {
        /// Base-2 logarithm of the scrypt cost N.
        log_n: u8,
        /// scrypt block size.
        r: u32,
        /// scrypt parallelism.
        p: u32,
    },
    /// A recovery code contains a character outside the code alphabet or has the
    /// wrong number of characters.
    #[error("recovery code is malformed (wrong length or character)")]
    RecoveryCodeMalformed,
    /// A recovery code is well formed but its checksum group does not match:
    /// most likely a typo.
    #[error("recovery code checksum mismatch (typo?)")]
    RecoveryCodeChecksum,
    /// An input is larger than the format allows.
    #[error("{what} too large")]
    TooLarge {
        /// What was too large.
        what: &'static str,
    },
    /// A blob id is empty, too long or contains characters outside `[A-Za-z0-9.%_-]`.
    #[error("invalid blob id")]
    InvalidBlobId,
    /// The plaintext fed to a blob encryptor does not match the size declared in its
    /// preamble.
    #[error("blob plaintext size does not match the declared size")]
    SizeMismatch,
    /// The operating system's random number generator failed.
    #[error("random number generator failure")]
    Random,
    /// Reading or writing failed (file system, network stream).
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
}

/// Convenience alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<io::Error> for Error {
    /// Unwraps an [`Error`] that travelled through an `io::Error` (the stream
    /// adapters report crypto failures that way), otherwise wraps as [`Error::Io`].
    fn from(err: io::Error) -> Self {
        let is_ours = err
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<Error>().is_some());
        if !is_ours {
            return Error::Io(err);
        }
        let kind = err.kind();
        match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            Some(Err(other)) => Error::Io(io::Error::new(kind, other)),
            None => Error::Io(io::Error::from(kind)),
        }
    }
}

impl From<Error> for io::Error {
    /// Wraps a crypto error so it can travel through `Read`/`AsyncRead`;
    /// `Error::from(io_err)` recovers it.
    fn from(err: Error) -> Self {
        match err {
            Error::Io(inner) => inner,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
