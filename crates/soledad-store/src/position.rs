//! Typed replica uids, transaction ids, positions and sync sources: made only
//! by fallible parsers, so a bad id never reaches the store (STYLE §3).

use std::fmt;

use crate::error::{Result, StoreError};
use crate::sync::MAX_TRANSACTION_ID_BYTES;
use crate::vectorclock::is_valid_replica_uid;

/// A replica's uid (u1db: `[A-Za-z0-9.%_-]+`, at most 256 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaUid(String);

impl ReplicaUid {
    /// Parses a replica uid.
    ///
    /// # Errors
    /// [`StoreError::InvalidReplicaUid`].
    pub fn parse(uid: &str) -> Result<Self> {
        if is_valid_replica_uid(uid) {
            Ok(Self(uid.to_owned()))
        } else {
            Err(StoreError::InvalidReplicaUid)
        }
    }

    /// The uid as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplicaUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ReplicaUid {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A transaction id (at most [`MAX_TRANSACTION_ID_BYTES`]; empty only for the
/// origin position, generation 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TransId(String);

impl TransId {
    /// Parses a transaction id.
    ///
    /// # Errors
    /// [`StoreError::InvalidTransactionId`] if longer than
    /// [`MAX_TRANSACTION_ID_BYTES`].
    pub fn parse(trans_id: &str) -> Result<Self> {
        if trans_id.len() > MAX_TRANSACTION_ID_BYTES {
            Err(StoreError::InvalidTransactionId)
        } else {
            Ok(Self(trans_id.to_owned()))
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TransId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point in a replica's history: a generation and the transaction id that
/// made it (u1db's `(generation, transaction_id)`). The origin is `(0, "")`.
///
/// Another replica's position is opaque apart from equality: a client keeps
/// what the server told it and hands it back, it does not order the server's
/// generations (a distributed backend need not have one counter).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Position {
    generation: u64,
    transaction_id: TransId,
}

impl Position {
    /// The origin: generation 0, empty transaction id.
    #[must_use]
    pub fn origin() -> Self {
        Self::default()
    }

    /// A position from its parsed parts.
    ///
    /// # Errors
    /// [`StoreError::InvalidGeneration`] beyond `i64::MAX` (what SQLite stores),
    /// [`StoreError::InvalidTransactionId`] for an empty transaction id at a
    /// generation other than 0.
    pub fn new(generation: u64, transaction_id: TransId) -> Result<Self> {
        if i64::try_from(generation).is_err() {
            return Err(StoreError::InvalidGeneration);
        }
        if generation != 0 && transaction_id.as_str().is_empty() {
            return Err(StoreError::InvalidTransactionId);
        }
        Ok(Self {
            generation,
            transaction_id,
        })
    }

    /// Parses a position from its wire parts.
    ///
    /// # Errors
    /// As [`Position::new`] and [`TransId::parse`].
    pub fn parse(generation: u64, transaction_id: &str) -> Result<Self> {
        Self::new(generation, TransId::parse(transaction_id)?)
    }

    /// The generation. Meaningful for ordering only in the replica that made it.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The transaction id.
    #[must_use]
    pub fn transaction_id(&self) -> &TransId {
        &self.transaction_id
    }

    /// True for the origin (generation 0).
    #[must_use]
    pub fn is_origin(&self) -> bool {
        self.generation == 0
    }

    /// u1db's `_validate_source` rule for a source's successive positions, as
    /// `put_doc_if_newer` applies it against the recorded one: a source's own
    /// position never moves back, and the same generation comes with the same
    /// transaction id. For a caller that checks a whole batch's positions in
    /// order first, then applies its documents in another order and records the
    /// last position once.
    ///
    /// # Errors
    /// [`StoreError::InvalidGeneration`] when `self` is older than `previous`,
    /// [`StoreError::InvalidTransactionId`] for the same generation with another
    /// transaction id.
    pub fn check_follows(&self, previous: &Position) -> Result<()> {
        if self.generation < previous.generation {
            Err(StoreError::InvalidGeneration)
        } else if self.generation > previous.generation
            || self.transaction_id == previous.transaction_id
        {
            Ok(())
        } else {
            Err(StoreError::InvalidTransactionId)
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.generation, self.transaction_id)
    }
}

/// Where a synced document comes from: the replica that sent it and its
/// position once the document is applied (recorded in the sync log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The sending replica.
    pub replica: ReplicaUid,
    /// Its position after this document.
    pub position: Position,
}

impl Source {
    /// A source from its parsed parts.
    #[must_use]
    pub fn new(replica: ReplicaUid, position: Position) -> Self {
        Self { replica, position }
    }
}

/// Whether [`crate::Database::put_doc_if_newer`] keeps a conflicting incoming
/// revision (u1db's `save_conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveConflict {
    /// Incoming becomes current and ours is kept as a conflict (a receiver).
    Yes,
    /// A conflicting incoming revision is not stored (a sender's echo).
    No,
}
