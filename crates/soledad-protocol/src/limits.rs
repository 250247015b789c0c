//! The one table of sizes and batch limits that client, server and store agree on.
//!
//! Every limit on what crosses the wire is derived here, so that what one side can
//! store the other side can receive: a document the client store accepts always fits
//! in a frame, and a frame the server accepts is never cut when it is sent back.

use crate::frame::MAX_FRAME_LEN;

/// Documents applied per committed batch, on either side of an exchange.
pub const BATCH_DOCS: usize = 256;

/// Payload bytes after which a batch is committed early, whatever its length.
pub const BATCH_BYTES: usize = 8 << 20;

/// Longest text field of a document frame (hidden id, revision, transaction id): the
/// frame stores each behind a `u16` length.
pub const MAX_FRAME_FIELD_BYTES: usize = u16::MAX as usize;

/// Largest document a client store accepts, counted as u1db counts it (JSON text +
/// id + revision).
///
/// Derived from [`MAX_FRAME_LEN`]: a sealed document grows by at most 12.5 % through
/// padding plus a few hundred bytes of id box, nonces and tags, and the frame adds
/// its three text fields. A quarter of the frame is kept as that margin.
pub const MAX_DOCUMENT_BYTES: usize = (MAX_FRAME_LEN as usize / 4) * 3;

/// Longest document id a client store accepts. Ids travel sealed inside the payload,
/// so this bounds the id box, not a frame field.
pub const MAX_DOC_ID_BYTES: usize = 4096;

/// How many documents and bytes make a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Documents per batch (at least 1).
    pub docs: usize,
    /// Payload bytes after which a batch is closed early (at least 1).
    pub bytes: usize,
}

impl BatchLimits {
    /// The limits both sides use by default ([`BATCH_DOCS`], [`BATCH_BYTES`]).
    pub const DEFAULT: BatchLimits = BatchLimits {
        docs: BATCH_DOCS,
        bytes: BATCH_BYTES,
    };

    /// Whether a batch of `docs` documents and `bytes` payload bytes is full.
    pub fn is_full(&self, docs: usize, bytes: usize) -> bool {
        docs >= self.docs.max(1) || bytes >= self.bytes.max(1)
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_document_fits_a_frame_after_sealing() {
        // Padding adds at most 1/8, the id box and AEAD overhead well under 64 KiB.
        let sealed = MAX_DOCUMENT_BYTES + MAX_DOCUMENT_BYTES / 8 + 64 * 1024;
        let fields = 3 * MAX_FRAME_FIELD_BYTES + 6 + 8;
        assert!(sealed + fields <= MAX_FRAME_LEN as usize);
    }

    #[test]
    fn zero_limits_still_make_progress() {
        let limits = BatchLimits { docs: 0, bytes: 0 };
        assert!(limits.is_full(1, 0));
        assert!(!BatchLimits::DEFAULT.is_full(1, 1));
    }
}
