//! JSON of the change notification route (`GET /changes/{uuid}`): a long poll
//! that answers as soon as the user's documents, blobs or incoming box changed
//! after the position the client names (`docs/protocol.md`, "Change
//! notifications").
//!
//! The answer says only *which kinds* changed and where the user now is (an
//! opaque marker), never what changed: the server learns and tells nothing it
//! did not know from the writes themselves.

use serde::{Deserialize, Serialize};

/// Path prefix of the route: `/changes/{uuid}`.
pub const CHANGES_PATH: &str = "/changes/";
/// Query parameter: the marker of the last answer (none: answer at once).
pub const CHANGES_SINCE_PARAM: &str = "since";
/// Query parameter: the replica uid of the asking device; document changes
/// uploaded by that replica itself do not wake it.
pub const CHANGES_SOURCE_PARAM: &str = "source";
/// Query parameter: the longest wait wanted, in whole seconds (the server caps
/// it at its own `live_wait_secs`; 0 answers at once).
pub const CHANGES_WAIT_PARAM: &str = "wait_secs";
/// Longest marker either side accepts, in bytes.
pub const MAX_MARKER_BYTES: usize = 256;

/// What changed: the kinds of a user's state a device may want to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChangeKind {
    /// The user's document store (a device uploaded documents).
    Docs,
    /// The user's blobs (put, deleted or flagged).
    Blobs,
    /// The incoming box (a delivery, a claim, a message processed or failed).
    Incoming,
}

impl ChangeKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ChangeKind; 3] = [ChangeKind::Docs, ChangeKind::Blobs, ChangeKind::Incoming];
}

/// Whether `marker` may travel: 1 to [`MAX_MARKER_BYTES`] URL-safe characters
/// (`A-Z a-z 0-9 - _ . ~`), so it goes into a query string unescaped.
pub fn is_valid_marker(marker: &str) -> bool {
    !marker.is_empty()
        && marker.len() <= MAX_MARKER_BYTES
        && marker
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Body of a `GET /changes/{uuid}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesResponse {
    /// The kinds that changed after the client's marker; empty when the wait
    /// ran out with no change. Every kind when the client gave no marker or
    /// one the server no longer knows (e.g. after a restart).
    pub changed: Vec<ChangeKind>,
    /// Where the user is now: send it as `since` with the next request.
    pub marker: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_travel_as_lowercase_words() {
        let body = ChangesResponse {
            changed: vec![ChangeKind::Docs, ChangeKind::Incoming],
            marker: "b1.2".to_owned(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        assert_eq!(text, r#"{"changed":["docs","incoming"],"marker":"b1.2"}"#);
        assert!(
            serde_json::from_str::<ChangesResponse>(r#"{"changed":["mail"],"marker":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn markers_are_short_and_url_safe() {
        assert!(is_valid_marker("a1b2.3-4_5~"));
        for bad in ["", "a b", "a&b", "a%20", "é", "a/b"] {
            assert!(!is_valid_marker(bad), "{bad:?}");
        }
        assert!(is_valid_marker(&"a".repeat(MAX_MARKER_BYTES)));
        assert!(!is_valid_marker(&"a".repeat(MAX_MARKER_BYTES + 1)));
    }
}
