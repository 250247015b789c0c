//! The one error type of the store. Variant names follow u1db's error names
//! (DESIGN §3) so the sync engine, the HTTP layer and the CLI can branch on them.

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key does not open this file, or the file is not a (SQLCipher) database
    /// at all (wrong key, plaintext file opened with a key, keyed file opened
    /// without one, corrupt header).
    #[error("wrong key or not a database")]
    WrongKeyOrNotADatabase,
    /// The file was created by a newer version of this crate (or is not ours).
    #[error("unsupported schema version {found}")]
    UnsupportedSchemaVersion {
        /// The version found in the file's `meta` table.
        found: u32,
    },
    /// The file holds another payload kind (a server database opened as a JSON
    /// client database or the reverse).
    #[error("database holds {found} payloads, {expected} was asked for")]
    WrongPayloadKind {
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind recorded in the file.
        found: String,
    },
    /// The file's contents break the store's own invariants (a stored revision
    /// that does not parse, a missing `meta` row, content that is not UTF-8 …).
    #[error("database is corrupt: {0}")]
    Corrupt(&'static str),
    /// A document id is not of the form `[A-Za-z0-9.%_-]+`.
    #[error("invalid document id")]
    InvalidDocId,
    /// The given text is not valid JSON.
    #[error("invalid JSON")]
    InvalidJson,
    /// The given JSON is valid but is not a JSON object.
    #[error("document content must be a JSON object")]
    InvalidContent,
    /// A revision string is not a canonical vector clock
    /// (`replica:counter|…`, sorted, counters ≥ 1), or a counter would overflow.
    #[error("invalid revision")]
    InvalidRevision,
    /// A replica uid is not of the form `[A-Za-z0-9.%_-]+`, or differs from the
    /// one stored in the database.
    #[error("invalid replica uid")]
    InvalidReplicaUid,
    /// The revision given does not match the document's current revision.
    #[error("revision conflict")]
    RevisionConflict,
    /// The document does not exist.
    #[error("document does not exist")]
    DocumentDoesNotExist,
    /// The document is already deleted.
    #[error("document already deleted")]
    DocumentAlreadyDeleted,
    /// The document has conflicts: resolve them first.
    #[error("document has conflicts")]
    ConflictedDoc,
    /// The document is bigger than the database's document size limit.
    #[error("document too big")]
    DocumentTooBig,
    /// A `*` was used where u1db does not allow it (a glob followed by a
    /// non-glob value, or a prefix glob after another glob).
    #[error("invalid globbing")]
    InvalidGlobbing,
    /// The number of values does not match the number of index expressions.
    #[error("wrong number of values for index")]
    InvalidValueForIndex,
    /// No index has this name.
    #[error("index does not exist")]
    IndexDoesNotExist,
    /// An index with this name but another definition exists.
    #[error("index name already taken")]
    IndexNameTakenError,
    /// An index expression does not parse.
    #[error("index definition parse error: {reason}")]
    IndexDefinitionParseError {
        /// What is wrong with the expression.
        reason: &'static str,
    },
    /// A generation is unknown here, or older than the one recorded for the
    /// other replica.
    #[error("invalid generation")]
    InvalidGeneration,
    /// A transaction id does not match the one recorded for its generation.
    #[error("invalid transaction id")]
    InvalidTransactionId,
    /// An operation of a batch failed after it had started writing, so the
    /// whole batch was rolled back.
    #[error("batch aborted by a failed operation")]
    BatchAborted,
    /// SQLite failed (I/O, disk full, busy …).
    #[error("storage error")]
    Storage(#[from] rusqlite::Error),
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    RandomUnavailable,
}

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
