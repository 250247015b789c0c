//! The blob vocabulary of the seed: ids, namespaces, flags, sync states, options.

use std::time::Duration;

use crate::error::Error;

/// Longest blob id the server accepts, in bytes.
pub const MAX_BLOB_ID_LEN: usize = 128;
/// Longest namespace the server accepts, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;
/// The namespace used when none is given (the seed's `default`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Whether `s` is 1..=`max` characters of `[A-Za-z0-9_-]` (the server's rule; such a
/// name is also safe in a URL path and query).
fn is_safe_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a blob id.
pub(crate) fn check_blob_id(id: &str) -> Result<(), Error> {
    if is_safe_name(id, MAX_BLOB_ID_LEN) {
        Ok(())
    } else {
        Err(Error::InvalidBlobId)
    }
}

/// Checks a namespace; `""` means [`DEFAULT_NAMESPACE`].
pub(crate) fn namespace(ns: &str) -> Result<&str, Error> {
    if ns.is_empty() {
        return Ok(DEFAULT_NAMESPACE);
    }
    if is_safe_name(ns, MAX_NAMESPACE_LEN) {
        Ok(ns)
    } else {
        Err(Error::InvalidBlobId)
    }
}

/// A processing flag kept by the server on a blob (used by the incoming box).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flag {
    /// Delivered, not yet taken by a consumer.
    Pending,
    /// Taken by a consumer.
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

    /// The upper-case wire name (`"PENDING"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Pending => "PENDING",
            Flag::Processing => "PROCESSING",
            Flag::Processed => "PROCESSED",
            Flag::Failed => "FAILED",
        }
    }

    /// Parses an upper-case wire name.
    ///
    /// # Errors
    /// [`Error::InvalidFlags`] for anything else.
    pub fn parse(name: &str) -> Result<Flag, Error> {
        Flag::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or(Error::InvalidFlags)
    }
}

/// Where a blob stands between this device and the server (the seed's
/// `SyncStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    /// Here and on the server.
    Synced,
    /// Here, not yet on the server.
    PendingUpload,
    /// On the server, not yet here.
    PendingDownload,
    /// Upload gave up (retries exhausted or refused, e.g. over quota); the local
    /// copy is intact and [`send_missing`](super::BlobManager::send_missing) tries again.
    FailedUpload,
    /// The server's copy does not authenticate (final), or the download gave up.
    FailedDownload,
    /// Kept on this device only; never sent.
    LocalOnly,
}

impl SyncStatus {
    /// Every state.
    pub const ALL: [SyncStatus; 6] = [
        SyncStatus::Synced,
        SyncStatus::PendingUpload,
        SyncStatus::PendingDownload,
        SyncStatus::FailedUpload,
        SyncStatus::FailedDownload,
        SyncStatus::LocalOnly,
    ];

    /// The seed's name (`"SYNCED"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "SYNCED",
            SyncStatus::PendingUpload => "PENDING_UPLOAD",
            SyncStatus::PendingDownload => "PENDING_DOWNLOAD",
            SyncStatus::FailedUpload => "FAILED_UPLOAD",
            SyncStatus::FailedDownload => "FAILED_DOWNLOAD",
            SyncStatus::LocalOnly => "LOCAL_ONLY",
        }
    }

    /// Code stored in the local database.
    pub(crate) fn code(self) -> i64 {
        match self {
            SyncStatus::Synced => 1,
            SyncStatus::PendingUpload => 2,
            SyncStatus::PendingDownload => 3,
            SyncStatus::FailedUpload => 4,
            SyncStatus::FailedDownload => 5,
            SyncStatus::LocalOnly => 6,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<SyncStatus> {
        SyncStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether the content is on this device.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            SyncStatus::Synced
                | SyncStatus::PendingUpload
                | SyncStatus::FailedUpload
                | SyncStatus::LocalOnly
        )
    }
}

/// Order of a remote listing by upload date (`order_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest first (`date`, `+date`).
    DateAscending,
    /// Newest first (`-date`).
    DateDescending,
}

/// What [`remote_list`](super::BlobManager::remote_list) asks the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteListQuery {
    /// Namespace (`""`: the default one).
    pub namespace: String,
    /// Only blobs carrying this flag.
    pub filter_flag: Option<Flag>,
    /// Order by upload date; `None` orders by id.
    pub order_by: Option<Order>,
    /// List deleted blobs (tombstones) instead of live ones.
    pub deleted: bool,
}

/// Transfer tuning: the seed's 3 concurrent transfers and back-off of 10, 20 … 60 s.
#[derive(Clone, Debug)]
pub struct BlobConfig {
    /// Transfers (uploads and downloads) running at once.
    pub concurrent_transfers: usize,
    /// Delay before the first retry; the n-th retry waits n × this.
    pub retry_step: Duration,
    /// Longest delay between two attempts.
    pub retry_max_delay: Duration,
    /// Retries after the first attempt before giving up (`MaximumRetries`).
    pub max_retries: u32,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            concurrent_transfers: 3,
            retry_step: Duration::from_secs(10),
            retry_max_delay: Duration::from_secs(60),
            max_retries: 10,
        }
    }
}

impl BlobConfig {
    /// Delay before retry number `retry` (1-based): 10, 20 … 60, 60 s by default.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        self.retry_step
            .saturating_mul(retry.max(1))
            .min(self.retry_max_delay)
    }
}

/// Progress of one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferProgress {
    /// Namespace of the blob.
    pub namespace: String,
    /// The blob.
    pub blob_id: String,
    /// Whether this is an upload (else a download).
    pub upload: bool,
    /// Stored (encrypted) bytes transferred so far, including a resumed prefix.
    pub done_bytes: u64,
    /// Stored bytes in all, when known.
    pub total_bytes: Option<u64>,
}

/// Progress of transfers since the manager was opened, and of each transfer in
/// flight (the seed's `sync_progress`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Transfers started.
    pub queued: u64,
    /// Transfers finished successfully.
    pub done: u64,
    /// Transfers that failed.
    pub failed: u64,
    /// Bytes transferred in all.
    pub done_bytes: u64,
    /// Transfers in flight.
    pub transfers: Vec<TransferProgress>,
}

impl SyncProgress {
    /// The transfer of `blob_id` in `namespace` (`""` is [`DEFAULT_NAMESPACE`]),
    /// if one is in flight.
    pub fn transfer(&self, namespace: &str, blob_id: &str) -> Option<&TransferProgress> {
        let namespace = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        self.transfers
            .iter()
            .find(|t| t.namespace == namespace && t.blob_id == blob_id)
    }
}

/// What a blob sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobSyncReport {
    /// Blobs uploaded.
    pub uploaded: Vec<String>,
    /// Blobs downloaded.
    pub downloaded: Vec<String>,
    /// Blobs whose transfer failed, with the reason.
    pub failed: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_back_off() {
        let config = BlobConfig::default();
        let delays: Vec<u64> = (1..=8).map(|n| config.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 30, 40, 50, 60, 60, 60]);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_blob_id("abc_DEF-09").is_ok());
        for bad in ["", "..", "a/b", "a.b", "a%2e", &"x".repeat(129)] {
            assert!(
                matches!(check_blob_id(bad), Err(Error::InvalidBlobId)),
                "{bad}"
            );
        }
        assert_eq!(namespace("").unwrap(), DEFAULT_NAMESPACE);
        assert!(namespace("a b").is_err());
        for status in SyncStatus::ALL {
            assert_eq!(SyncStatus::from_code(status.code()), Some(status));
        }
        for flag in Flag::ALL {
            assert_eq!(Flag::parse(flag.as_str()).unwrap(), flag);
        }
        assert!(matches!(Flag::parse("pending"), Err(Error::InvalidFlags)));
    }
}
