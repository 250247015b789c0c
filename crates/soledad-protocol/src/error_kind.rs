//! Error kinds as they travel in `{"error", "message"}` bodies, and their HTTP statuses.
//!
//! One table for both sides: the server maps its errors to a kind and status here, the
//! client maps the kind string back to a typed error.

use serde::{Deserialize, Serialize};

/// The JSON body of every error response (and of an error frame mid-stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable kind string, see [`ErrorKind::as_str`].
    pub error: String,
    /// A human-readable message; carries no user data.
    pub message: String,
}

impl ErrorBody {
    /// A body for `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody {
            error: kind.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// The kind, if this version knows it.
    pub fn kind(&self) -> Option<ErrorKind> {
        ErrorKind::parse(&self.error)
    }
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = ($text:literal, $status:literal),)*) => {
        /// Every error kind the server sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorKind {
            /// Every kind, for tables and tests.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// The wire string.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorKind::$variant => $text,)* }
            }

            /// The HTTP status code the server answers with.
            pub fn status(self) -> u16 {
                match self { $(ErrorKind::$variant => $status,)* }
            }

            /// Parses a wire string.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(ErrorKind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    /// No or an unknown/expired token.
    Unauthorized = ("unauthorized", 401),
    /// A valid token for another user, or a user token on a service route.
    Forbidden = ("forbidden", 403),
    /// The route or resource does not exist.
    NotFound = ("not_found", 404),
    /// The route exists but not with this method.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// The user's document store does not exist (and `ensure` was not asked).
    DatabaseDoesNotExist = ("database_does_not_exist", 404),
    /// The document does not exist.
    DocumentDoesNotExist = ("document_does_not_exist", 404),
    /// The blob does not exist.
    BlobNotFound = ("blob_not_found", 404),
    /// The revision given is not the current one.
    RevisionConflict = ("revision_conflict", 409),
    /// The blob already exists (blobs are immutable).
    BlobExists = ("blob_exists", 409),
    /// The incoming message is claimed by another processor, failed at this
    /// processor version or newer, or the caller's claim is no longer current.
    MessageClaimed = ("message_claimed", 409),
    /// The user is already registered.
    UserExists = ("user_exists", 409),
    /// The source claims a target generation the target never had, or an older one
    /// than recorded.
    InvalidGeneration = ("invalid_generation", 409),
    /// The source claims a transaction id that does not match the generation.
    InvalidTransactionId = ("invalid_transaction_id", 409),
    /// A replica uid that is malformed or equal to the target's own.
    InvalidReplicaUid = ("invalid_replica_uid", 400),
    /// A malformed user id.
    InvalidUserId = ("invalid_user_id", 400),
    /// A malformed document id.
    InvalidDocId = ("invalid_doc_id", 400),
    /// A malformed blob id.
    InvalidBlobId = ("invalid_blob_id", 400),
    /// A malformed blob namespace.
    InvalidNamespace = ("invalid_namespace", 400),
    /// A malformed revision.
    InvalidRevision = ("invalid_revision", 400),
    /// A malformed request (path, query, headers or body).
    InvalidRequest = ("invalid_request", 400),
    /// A sync stream that is not well-formed.
    BrokenSyncStream = ("broken_sync_stream", 400),
    /// An upload body that ended early, ran long, or failed: nothing was stored.
    BodyInterrupted = ("body_interrupted", 400),
    /// A blob flag that is not one of PENDING, PROCESSING, PROCESSED, FAILED.
    InvalidFlag = ("invalid_flag", 406),
    /// A document above the size limit.
    DocumentTooBig = ("document_too_big", 413),
    /// A `Range` that does not overlap the blob.
    RangeNotSatisfiable = ("range_not_satisfiable", 416),
    /// The user's quota would be exceeded; nothing was stored.
    QuotaExceeded = ("quota_exceeded", 507),
    /// Too many requests of this user at once (sync exchanges) or too many
    /// misses (shared store lookups); retry later.
    TooManyRequests = ("too_many_requests", 429),
    /// The server is shutting down or overloaded; retry later.
    Unavailable = ("unavailable", 503),
    /// Anything else; details are in the server's log, not in the response.
    Internal = ("internal", 500),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_has_an_error_status() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(*kind));
            assert!((400..600).contains(&kind.status()), "{kind:?}");
        }
        assert_eq!(ErrorKind::parse("no such kind"), None);
    }

    #[test]
    fn wire_strings_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind.as_str()), "duplicate {}", kind.as_str());
        }
    }
}
