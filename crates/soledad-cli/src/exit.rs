//! The one table from errors to exit statuses and JSON error kinds (DESIGN §8):
//! 0 ok, 1 other, 2 usage, 3 not found, 4 conflict, 5 auth, 6 integrity.

use soledad_client::{Error, StoreError};
use soledad_crypto::Error as CryptoError;

use crate::error::CliError;

/// The exit statuses of DESIGN §8 (besides 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// 1: anything else (network, local I/O, server trouble).
    Other,
    /// 2: the command line or its input is wrong.
    Usage,
    /// 3: the document or index does not exist.
    NotFound,
    /// 4: a revision conflict or a conflicted document.
    Conflict,
    /// 5: wrong passphrase or recovery code, token refused.
    Auth,
    /// 6: tampering or rollback detected.
    Integrity,
}

impl Status {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Status::Other => 1,
            Status::Usage => 2,
            Status::NotFound => 3,
            Status::Conflict => 4,
            Status::Auth => 5,
            Status::Integrity => 6,
        }
    }
}

/// The status and the JSON `error` kind of a client error.
pub(crate) fn classify(err: &Error) -> (Status, &'static str) {
    match err {
        Error::Store(store) => classify_store(store),
        Error::Crypto(crypto) => match crypto {
            CryptoError::WrongPassphrase => (Status::Auth, "wrong_passphrase"),
            CryptoError::WrongRecoveryCode => (Status::Auth, "wrong_recovery_code"),
            CryptoError::RecoveryCodeMalformed | CryptoError::RecoveryCodeChecksum => {
                (Status::Usage, "invalid_recovery_code")
            }
            CryptoError::Integrity => (Status::Integrity, "integrity"),
            _ => (Status::Other, "crypto"),
        },
        Error::Auth => (Status::Auth, "unauthorized"),
        Error::BackupNotFound => (Status::Auth, "backup_not_found"),
        Error::Integrity { .. } => (Status::Integrity, "integrity"),
        Error::Diverged(_) => (Status::Integrity, "diverged"),
        Error::Network(_) => (Status::Other, "network"),
        Error::NoServer => (Status::Usage, "no_server"),
        Error::Certificate(_) => (Status::Usage, "certificate"),
        Error::Server { .. } => (Status::Other, "server"),
        Error::Protocol(_) => (Status::Other, "protocol"),
        Error::Io(_) => (Status::Other, "io"),
        Error::Closed => (Status::Other, "closed"),
        Error::BlobNotFound => (Status::NotFound, "blob_not_found"),
        Error::BlobAlreadyExists => (Status::Conflict, "blob_exists"),
        Error::InvalidBlobId => (Status::Usage, "invalid_blob_id"),
        Error::InvalidFlags => (Status::Usage, "invalid_flags"),
        Error::MaximumRetries { .. } | Error::RetriableTransfer(_) => {
            (Status::Other, "transfer_failed")
        }
        Error::LiveSyncRunning => (Status::Conflict, "live_sync_running"),
        _ => (Status::Other, "other"),
    }
}

fn classify_store(err: &StoreError) -> (Status, &'static str) {
    match err {
        StoreError::DocumentDoesNotExist => (Status::NotFound, "document_does_not_exist"),
        StoreError::DocumentAlreadyDeleted => (Status::NotFound, "document_already_deleted"),
        StoreError::IndexDoesNotExist => (Status::NotFound, "index_does_not_exist"),
        StoreError::RevisionConflict => (Status::Conflict, "revision_conflict"),
        StoreError::ConflictedDoc => (Status::Conflict, "conflicted_doc"),
        StoreError::IndexNameTakenError => (Status::Conflict, "index_name_taken"),
        StoreError::InvalidDocId => (Status::Usage, "invalid_doc_id"),
        StoreError::InvalidJson => (Status::Usage, "invalid_json"),
        StoreError::InvalidContent => (Status::Usage, "invalid_content"),
        StoreError::InvalidRevision => (Status::Usage, "invalid_revision"),
        StoreError::InvalidGlobbing => (Status::Usage, "invalid_globbing"),
        StoreError::InvalidValueForIndex => (Status::Usage, "invalid_value_for_index"),
        StoreError::IndexDefinitionParseError { .. } => {
            (Status::Usage, "index_definition_parse_error")
        }
        StoreError::DocumentTooBig => (Status::Usage, "document_too_big"),
        StoreError::Corrupt(_) => (Status::Integrity, "corrupt_database"),
        StoreError::WrongKeyOrNotADatabase => (Status::Auth, "wrong_key_or_not_a_database"),
        _ => (Status::Other, "store"),
    }
}

/// The status and JSON kind of any CLI error.
pub(crate) fn classify_cli(err: &CliError) -> (Status, &'static str) {
    match err {
        CliError::Client(client) => classify(client),
        CliError::Usage(_) => (Status::Usage, "usage"),
        CliError::DocumentNotFound(_) => (Status::NotFound, "document_does_not_exist"),
        CliError::Io { .. } => (Status::Other, "io"),
        CliError::DemoServer(_) | CliError::Demo(_) => (Status::Other, "demo"),
    }
}

/// The exit code of an error (the table of DESIGN §8).
pub(crate) fn exit_code(err: &CliError) -> u8 {
    classify_cli(err).0.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use soledad_client::DivergedKind;

    #[test]
    fn every_client_error_maps_to_its_exit_code() {
        let table: Vec<(Error, u8, &str)> = vec![
            (
                StoreError::DocumentDoesNotExist.into(),
                3,
                "document_does_not_exist",
            ),
            (
                StoreError::DocumentAlreadyDeleted.into(),
                3,
                "document_already_deleted",
            ),
            (
                StoreError::IndexDoesNotExist.into(),
                3,
                "index_does_not_exist",
            ),
            (StoreError::RevisionConflict.into(), 4, "revision_conflict"),
            (StoreError::ConflictedDoc.into(), 4, "conflicted_doc"),
            (
                StoreError::IndexNameTakenError.into(),
                4,
                "index_name_taken",
            ),
            (StoreError::InvalidDocId.into(), 2, "invalid_doc_id"),
            (StoreError::InvalidJson.into(), 2, "invalid_json"),
            (StoreError::InvalidContent.into(), 2, "invalid_content"),
            (StoreError::InvalidRevision.into(), 2, "invalid_revision"),
            (StoreError::InvalidGlobbing.into(), 2, "invalid_globbing"),
            (
                StoreError::InvalidValueForIndex.into(),
                2,
                "invalid_value_for_index",
            ),
            (
                StoreError::IndexDefinitionParseError { reason: "x" }.into(),
                2,
                "index_definition_parse_error",
            ),
            (StoreError::DocumentTooBig.into(), 2, "document_too_big"),
            (StoreError::Corrupt("x").into(), 6, "corrupt_database"),
            (
                StoreError::WrongKeyOrNotADatabase.into(),
                5,
                "wrong_key_or_not_a_database",
            ),
            (StoreError::BatchAborted.into(), 1, "store"),
            (CryptoError::WrongPassphrase.into(), 5, "wrong_passphrase"),
            (
                CryptoError::WrongRecoveryCode.into(),
                5,
                "wrong_recovery_code",
            ),
            (
                CryptoError::RecoveryCodeChecksum.into(),
                2,
                "invalid_recovery_code",
            ),
            (
                CryptoError::RecoveryCodeMalformed.into(),
                2,
                "invalid_recovery_code",
            ),
            (CryptoError::Integrity.into(), 6, "integrity"),
            (CryptoError::Random.into(), 1, "crypto"),
            (Error::Auth, 5, "unauthorized"),
            (Error::BackupNotFound, 5, "backup_not_found"),
            (Error::Integrity { count: 2 }, 6, "integrity"),
            (
                Error::Diverged(DivergedKind::InvalidGeneration),
                6,
                "diverged",
            ),
            (
                Error::Diverged(DivergedKind::InvalidTransactionId),
                6,
                "diverged",
            ),
            (
                Error::Network(Box::new(std::io::Error::other("refused"))),
                1,
                "network",
            ),
            (Error::NoServer, 2, "no_server"),
            (Error::Certificate("bad"), 2, "certificate"),
            (
                Error::Server {
                    kind: None,
                    message: "boom".into(),
                },
                1,
                "server",
            ),
            (Error::Io(std::io::Error::other("disk")), 1, "io"),
            (Error::Closed, 1, "closed"),
            (Error::BlobNotFound, 3, "blob_not_found"),
            (Error::BlobAlreadyExists, 4, "blob_exists"),
            (Error::InvalidBlobId, 2, "invalid_blob_id"),
            (Error::InvalidFlags, 2, "invalid_flags"),
            (
                Error::MaximumRetries {
                    attempts: 3,
                    last: Box::new(Error::Closed),
                },
                1,
                "transfer_failed",
            ),
            (
                Error::RetriableTransfer(Box::new(Error::Closed)),
                1,
                "transfer_failed",
            ),
        ];
        for (err, code, kind) in table {
            assert_eq!(classify(&err).1, kind, "kind of {err:?}");
            let err = CliError::Client(err);
            assert_eq!(exit_code(&err), code, "exit code of {err:?}");
        }
    }

    #[test]
    fn cli_errors_map_to_usage_not_found_and_other() {
        let table: Vec<(CliError, u8)> = vec![
            (CliError::usage("no uuid"), 2),
            (CliError::DocumentNotFound("x".into()), 3),
            (CliError::io("reading", std::io::Error::other("x")), 1),
            (CliError::Demo("x".into()), 1),
            (CliError::Client(Error::Auth), 5),
        ];
        for (err, code) in &table {
            assert_eq!(exit_code(err), *code, "{err:?}");
        }
    }
}
