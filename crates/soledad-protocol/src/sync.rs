//! JSON messages of the sync routes (`/user-{uuid}/sync-from/{source_replica_uid}`).

use serde::{Deserialize, Serialize};

/// Prefix of a user database name, in routes and on disk: `user-{uuid}`.
pub const USER_DB_PREFIX: &str = "user-";

/// The `{uuid}` of a `user-{uuid}` database name, or `None` without the prefix. The
/// caller parses the uuid itself (the server into its user id).
pub fn user_db_uuid(db_name: &str) -> Option<&str> {
    db_name.strip_prefix(USER_DB_PREFIX)
}

/// The `user-{uuid}` database name of a user.
pub fn user_db_name(uuid: &str) -> String {
    format!("{USER_DB_PREFIX}{uuid}")
}

/// Header carrying a shared document's revision (u1db's `x-u1db-rev`).
pub const REV_HEADER: &str = "x-u1db-rev";

/// `Content-Type` of the framed bodies of `POST /user-{uuid}/sync-from/{source}`.
pub const SYNC_CONTENT_TYPE: &str = "application/x-soledad-sync";

/// Response of `GET /user-{uuid}/sync-from/{source_replica_uid}`: where the target is, and
/// what it recorded about the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncInfo {
    /// The target's (server store's) replica uid.
    pub target_replica_uid: String,
    /// The target's current generation.
    pub target_replica_generation: u64,
    /// The target's transaction id at that generation (`""` at generation 0).
    pub target_replica_transaction_id: String,
    /// The source replica this answer is about.
    pub source_replica_uid: String,
    /// The source generation the target has recorded as fully received (0 if none).
    pub source_replica_generation: u64,
    /// The source transaction id recorded with it (`""` if none).
    pub source_transaction_id: String,
}

/// Body of `PUT /user-{uuid}/sync-from/{source_replica_uid}`: record that the target has
/// (or no longer needs) everything of the source up to this position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSyncInfo {
    /// The source's generation.
    pub generation: u64,
    /// The source's transaction id at that generation.
    pub transaction_id: String,
}

/// First frame of a sync exchange request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRequestHeader {
    /// The last target generation the source has fully received (0 if none).
    pub last_known_generation: u64,
    /// The target's transaction id at that generation, as the source recorded it
    /// (`""` at generation 0). The target refuses a position it does not have.
    pub last_known_trans_id: String,
    /// Create the user's store if it does not exist yet.
    #[serde(default)]
    pub ensure: bool,
}

/// First frame of a sync exchange response, sent after every document of the request
/// has been applied and committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeResponseHeader {
    /// The target's replica uid.
    pub target_replica_uid: String,
    /// The target's generation once the source's documents were applied.
    pub target_generation: u64,
    /// The target's transaction id at that generation.
    pub target_transaction_id: String,
    /// How many document frames follow.
    pub document_count: u64,
}

/// Last frame of a request or a response: the sender's position that the receiver may
/// record once it has applied every document frame before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeEnd {
    /// The sender's generation covered by the frames sent.
    pub generation: u64,
    /// The sender's transaction id at that generation.
    pub transaction_id: String,
}
