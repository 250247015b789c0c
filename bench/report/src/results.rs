//! What one run measured, as the report and plots read it (also written as JSON).

use serde::{Deserialize, Serialize};

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Results {
    /// Device → server → device of about 10 MB in documents of one size.
    pub(crate) transfers: Vec<Transfer>,
    /// Sync of a store of N 1 KB documents, then no-op and one-document syncs on it.
    pub(crate) stores: Vec<StorePoint>,
    /// Blob put + upload on one device, download on another.
    pub(crate) blobs: Vec<BlobPoint>,
    /// No-op syncs per second the server answers for N concurrent clients.
    pub(crate) concurrency: Vec<ConcurrencyPoint>,
    /// The peer's figures (empty when the peer did not run).
    pub(crate) peer: Vec<PeerLine>,
    /// JSON lines of other harnesses (`--extra-json`), as given.
    pub(crate) extra: Vec<serde_json::Value>,
    /// Whether the peak RSS of each blob size is its own (the kernel let us reset it).
    pub(crate) blob_rss_isolated: bool,
    /// Wall time of the measuring (not the build), seconds.
    pub(crate) total_seconds: f64,
}

/// Device A writes `count` documents of `size` bytes, syncs up; device B syncs down.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Transfer {
    pub(crate) count: usize,
    pub(crate) size: usize,
    /// The local write on A (one batch).
    pub(crate) write_ms: f64,
    /// A → server.
    pub(crate) upload_ms: f64,
    /// Server → B.
    pub(crate) download_ms: f64,
    /// The three, end to end (median of the sums).
    pub(crate) total_ms: f64,
    /// The raw floor of the same bytes (seal + plain SQLite write each side + open).
    pub(crate) floor_ms: f64,
    /// Runs the medians are of.
    pub(crate) runs: usize,
}

/// A store of `transfer.count` documents: its first sync, then small syncs on it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StorePoint {
    pub(crate) transfer: Transfer,
    /// A sync with nothing to send or receive (device B), median.
    pub(crate) noop_ms: f64,
    /// One new 1 KB document: A syncs it up, B down, median.
    pub(crate) one_doc_ms: f64,
}

/// One blob of `size` bytes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BlobPoint {
    pub(crate) size: u64,
    /// `put` on device A (encrypt into the local store and upload).
    pub(crate) upload_ms: f64,
    /// `fetch_missing` on device B (download, verify, store).
    pub(crate) download_ms: f64,
    /// Raw floor: AES-256-GCM blob stream to a file + fsync, then decrypted back.
    pub(crate) floor_ms: f64,
    /// Peak RSS of this process (client and in-process server) during the blob.
    pub(crate) peak_rss_mib: Option<f64>,
    /// RSS of this process just before the blob (what the peak adds to).
    pub(crate) rss_before_mib: Option<f64>,
    pub(crate) runs: usize,
}

/// `clients` devices (one user each) syncing with nothing new, as fast as they can.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConcurrencyPoint {
    pub(crate) clients: usize,
    /// Completed syncs per second, all clients together.
    pub(crate) syncs_per_s: f64,
    /// Median time of one sync.
    pub(crate) p50_ms: f64,
    /// Syncs that failed with a network error (the connection was dropped).
    pub(crate) failed: usize,
}

/// One JSON line of the peer (or of `--extra-json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "scenario")]
pub(crate) enum PeerLine {
    /// As [`Transfer`] without the floor.
    #[serde(rename = "transfer")]
    Transfer {
        system: String,
        count: usize,
        size: usize,
        write_ms: f64,
        upload_ms: f64,
        download_ms: f64,
        total_ms: f64,
    },
    /// Live propagation: a write on one device until another device sees it.
    #[serde(rename = "live_latency")]
    Live {
        #[serde(default = "soledad_name")]
        system: String,
        p50_ms: f64,
        p90_ms: f64,
        max_ms: f64,
        n: usize,
    },
}

fn soledad_name() -> String {
    "soledad".to_owned()
}

impl Results {
    /// The peer's transfer of `count` × `size` by `system`, end to end, ms.
    pub(crate) fn peer_total(&self, system: &str, count: usize, size: usize) -> Option<f64> {
        self.peer.iter().find_map(|line| match line {
            PeerLine::Transfer {
                system: s,
                count: c,
                size: z,
                total_ms,
                ..
            } if s == system && *c == count && *z == size => Some(*total_ms),
            _ => None,
        })
    }

    /// Live latency lines: the peer's, then those of `--extra-json`.
    pub(crate) fn live(&self) -> Vec<PeerLine> {
        let extra = self
            .extra
            .iter()
            .filter_map(|v| serde_json::from_value::<PeerLine>(v.clone()).ok());
        self.peer
            .iter()
            .cloned()
            .chain(extra)
            .filter(|l| matches!(l, PeerLine::Live { .. }))
            .collect()
    }
}
