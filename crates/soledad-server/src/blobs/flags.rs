//! Remote flags of a blob (`PENDING`, `PROCESSING`, `PROCESSED`, `FAILED`).

use serde::{Deserialize, Serialize};

use super::error::BlobError;

/// A processing flag a client can set on a blob (used by the incoming box).
///
/// Serialised (JSON, `.flags` sidecar files) as its upper-case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Flag {
    /// Delivered, not yet taken by a consumer.
    Pending,
    /// Reserved by a consumer that is processing it.
    Processing,
    /// Processed successfully.
    Processed,
    /// Processing failed.
    Failed,
}

impl Flag {
    /// Every flag, in the seed's order.
    pub const ALL: [Flag; 4] = [
        Flag::Pending,
        Flag::Processing,
        Flag::Processed,
        Flag::Failed,
    ];

    /// Parses the upper-case name of a flag (`"PENDING"`, …).
    ///
    /// # Errors
    /// [`BlobError::InvalidFlag`] for anything else (names are case-sensitive).
    pub fn parse(s: &str) -> Result<Self, BlobError> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or(BlobError::InvalidFlag)
    }

    /// The upper-case name of the flag.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Pending => "PENDING",
            Flag::Processing => "PROCESSING",
            Flag::Processed => "PROCESSED",
            Flag::Failed => "FAILED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_serde_agree() {
        for f in Flag::ALL {
            assert_eq!(Flag::parse(f.as_str()).unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
        assert!(matches!(
            Flag::parse("pending"),
            Err(BlobError::InvalidFlag)
        ));
        assert!(matches!(Flag::parse(""), Err(BlobError::InvalidFlag)));
    }
}
