//! The sans-I/O core of the blob stream: STREAM-segmented AES-256-GCM.
//!
//! The plaintext is cut into [`SEGMENT_SIZE`] segments (the last one may be shorter,
//! and an empty blob is one empty segment). Segment `i` of `n` is sealed with
//!
//! ```text
//! (key ‖ prefix) = HKDF-SHA256(salt = preamble salt, ikm = blob key,
//!                              info = "soledad/v1/blob" ‖ u8 len(blob_id) ‖ blob_id)[..39]
//! nonce_i        = prefix (7 bytes) ‖ u32 BE i ‖ (0x01 if i = n−1 else 0x00)
//! AAD            = the encoded preamble
//! ```
//! so every segment is bound to its position, to being last or not, to its blob and
//! to the declared size. The I/O adapters (`stream_io`, `stream_async`) only move
//! bytes in and out of these two types.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::BlobKey;
use crate::preamble::{BLOB_SALT_LEN, Preamble, Scheme};
use crate::primitives::{AeadKey, KEY_LEN, NONCE_LEN, TAG_LEN, hkdf_sha256, random_array};

/// Plaintext bytes per segment (64 KiB).
pub const SEGMENT_SIZE: usize = 64 * 1024;
/// Sealed bytes per full segment (plaintext + tag).
pub const SEALED_SEGMENT_SIZE: usize = SEGMENT_SIZE + TAG_LEN;
/// Largest blob: 2^32 segments of 64 KiB (256 TiB).
pub const MAX_BLOB_SIZE: u64 = (1u64 << 32) * SEGMENT_SIZE as u64;

const PREFIX_LEN: usize = 7;
const HKDF_INFO: &[u8] = b"soledad/v1/blob";

/// Number of segments of a blob of `size` plaintext bytes.
fn segment_count(size: u64) -> u64 {
    size.div_ceil(SEGMENT_SIZE as u64).max(1)
}

impl Preamble {
    /// Number of STREAM segments of this blob (`symkey` only; 0 for `external`).
    pub fn segment_count(&self) -> u64 {
        match self.scheme() {
            Scheme::Symkey => segment_count(self.plaintext_size()),
            Scheme::External => 0,
        }
    }

    /// Length of what follows the preamble in a well-formed stored blob: for
    /// `symkey`, plaintext size + 16 bytes per segment; for `external`, the
    /// plaintext size. Lets the server check an upload's length.
    pub fn body_len(&self) -> u64 {
        let tags = self.segment_count().saturating_mul(TAG_LEN as u64);
        self.plaintext_size().saturating_add(tags)
    }

    /// Which segments hold plaintext bytes `start..end` (end exclusive, clamped to
    /// the blob size) and where they lie in the body (offsets after the preamble):
    /// what an HTTP `Range` request must fetch. `None` for an empty range, an
    /// `external` blob, or a blob over [`MAX_BLOB_SIZE`].
    pub fn segment_span(&self, start: u64, end: u64) -> Option<SegmentSpan> {
        let end = end.min(self.plaintext_size());
        // Parsed preambles may declare any size; past MAX_BLOB_SIZE no decryptor will
        // open the blob, and the offsets below could overflow.
        if self.scheme() != Scheme::Symkey || start >= end || end > MAX_BLOB_SIZE {
            return None;
        }
        let seg = SEGMENT_SIZE as u64;
        let first = start / seg;
        let last = (end - 1) / seg;
        let body_start = first * SEALED_SEGMENT_SIZE as u64;
        let body_end = (last * SEALED_SEGMENT_SIZE as u64)
            .saturating_add(self.sealed_len(last) as u64)
            .min(self.body_len());
        Some(SegmentSpan {
            first_segment: first,
            last_segment: last,
            body_start,
            body_end,
            skip: start - first * seg,
        })
    }

    /// Sealed length of segment `index` (0 past the end).
    fn sealed_len(&self, index: u64) -> usize {
        let count = self.segment_count();
        if index >= count {
            return 0;
        }
        if index + 1 < count {
            return SEALED_SEGMENT_SIZE;
        }
        let rest = self.plaintext_size() - index * SEGMENT_SIZE as u64;
        // rest ≤ SEGMENT_SIZE.
        usize::try_from(rest).unwrap_or(SEGMENT_SIZE) + TAG_LEN
    }
}

/// Where a plaintext range lies in the stored body; see [`Preamble::segment_span`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    /// First segment index to fetch and open.
    pub first_segment: u64,
    /// Last segment index (inclusive).
    pub last_segment: u64,
    /// Body offset of the first segment (add the preamble length for a file offset).
    pub body_start: u64,
    /// Body offset just past the last segment.
    pub body_end: u64,
    /// Plaintext bytes to skip at the start of the first opened segment.
    pub skip: u64,
}

/// Key and nonce prefix of one blob.
struct SegmentCipher {
    key: AeadKey,
    prefix: [u8; PREFIX_LEN],
    aad: Vec<u8>,
    count: u64,
}

impl SegmentCipher {
    fn new(blob_key: &BlobKey, preamble: &Preamble) -> Result<Self> {
        let salt = preamble.salt().ok_or(Error::ExternalBlob)?;
        let id = preamble.blob_id().as_bytes();
        let id_len = [u8::try_from(id.len()).map_err(|_| Error::InvalidBlobId)?];
        let mut okm = Zeroizing::new([0u8; KEY_LEN + PREFIX_LEN]);
        hkdf_sha256(
            salt,
            blob_key.0.as_ref(),
            &[HKDF_INFO, &id_len, id],
            okm.as_mut(),
        )?;
        let (key_bytes, prefix_bytes) = okm.split_at(KEY_LEN);
        let key_bytes: &[u8; KEY_LEN] = key_bytes.try_into().map_err(|_| Error::Integrity)?;
        let prefix: [u8; PREFIX_LEN] = prefix_bytes.try_into().map_err(|_| Error::Integrity)?;
        Ok(Self {
            key: AeadKey::new(key_bytes)?,
            prefix,
            aad: preamble.to_bytes(),
            count: preamble.segment_count(),
        })
    }

    fn nonce(&self, index: u64) -> Result<[u8; NONCE_LEN]> {
        let counter = u32::try_from(index).map_err(|_| Error::TooLarge { what: "blob" })?;
        let mut nonce = [0u8; NONCE_LEN];
        let (prefix, rest) = nonce.split_at_mut(PREFIX_LEN);
        prefix.copy_from_slice(&self.prefix);
        let (ctr, last) = rest.split_at_mut(4);
        ctr.copy_from_slice(&counter.to_be_bytes());
        if let Some(flag) = last.first_mut() {
            *flag = u8::from(index + 1 == self.count);
        }
        Ok(nonce)
    }
}

impl BlobKey {
    /// Starts encrypting a blob of exactly `plaintext_size` bytes with a fresh random
    /// salt.
    ///
    /// # Errors
    /// [`Error::InvalidBlobId`], [`Error::TooLarge`] over [`MAX_BLOB_SIZE`],
    /// [`Error::Random`].
    pub fn encryptor(&self, blob_id: &str, plaintext_size: u64) -> Result<BlobEncryptor> {
        self.encryptor_with_salt(blob_id, plaintext_size, random_array()?)
    }

    /// [`encryptor`](Self::encryptor) with a caller-chosen salt, for known-answer
    /// vectors only: reusing a salt for the same blob id reuses nonces.
    ///
    /// # Errors
    /// As [`encryptor`](Self::encryptor).
    #[doc(hidden)]
    pub fn danger_encryptor_with_salt(
        &self,
        blob_id: &str,
        plaintext_size: u64,
        salt: [u8; BLOB_SALT_LEN],
    ) -> Result<BlobEncryptor> {
        self.encryptor_with_salt(blob_id, plaintext_size, salt)
    }

    fn encryptor_with_salt(
        &self,
        blob_id: &str,
        plaintext_size: u64,
        salt: [u8; BLOB_SALT_LEN],
    ) -> Result<BlobEncryptor> {
        if plaintext_size > MAX_BLOB_SIZE {
            return Err(Error::TooLarge { what: "blob" });
        }
        let preamble = Preamble::symkey(blob_id, plaintext_size, salt)?;
        let cipher = SegmentCipher::new(self, &preamble)?;
        Ok(BlobEncryptor {
            preamble,
            cipher,
            next: 0,
        })
    }

    /// Starts decrypting the blob `preamble` describes. `expected_blob_id` is the id
    /// the caller asked for: a preamble naming another blob is an integrity failure.
    ///
    /// # Errors
    /// [`Error::ExternalBlob`] for an `external` blob; [`Error::Integrity`] if the
    /// preamble names another blob; [`Error::TooLarge`] over [`MAX_BLOB_SIZE`].
    pub fn decryptor(&self, preamble: &Preamble, expected_blob_id: &str) -> Result<BlobDecryptor> {
        if preamble.scheme() == Scheme::External {
            return Err(Error::ExternalBlob);
        }
        if preamble.blob_id() != expected_blob_id {
            return Err(Error::Integrity);
        }
        if preamble.plaintext_size() > MAX_BLOB_SIZE {
            return Err(Error::TooLarge { what: "blob" });
        }
        Ok(BlobDecryptor {
            preamble: preamble.clone(),
            cipher: SegmentCipher::new(self, preamble)?,
            next: 0,
        })
    }
}

/// Seals a blob segment by segment. Emit [`preamble_bytes`](Self::preamble_bytes)
/// first, then each sealed segment in order.
pub struct BlobEncryptor {
    preamble: Preamble,
    cipher: SegmentCipher,
    next: u64,
}

impl BlobEncryptor {
    /// The preamble of this blob.
    pub fn preamble(&self) -> &Preamble {
        &self.preamble
    }

    /// The encoded preamble: the first bytes of the stored blob.
    pub fn preamble_bytes(&self) -> &[u8] {
        &self.cipher.aad
    }

    /// Plaintext bytes the next segment must have, or `None` once all are sealed.
    pub fn next_segment_len(&self) -> Option<usize> {
        let len = self.preamble.sealed_len(self.next);
        (self.next < self.cipher.count).then(|| len - TAG_LEN)
    }

    /// Seals the next segment in place: `buf` holds exactly
    /// [`next_segment_len`](Self::next_segment_len) plaintext bytes and gets the
    /// ciphertext with the tag appended.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if `buf` has the wrong length or all segments are sealed.
    pub fn seal_next(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        match self.next_segment_len() {
            Some(len) if len == buf.len() => {}
            _ => return Err(Error::SizeMismatch),
        }
        let nonce = self.cipher.nonce(self.next)?;
        self.cipher.key.seal(nonce, &self.cipher.aad, buf)?;
        self.next += 1;
        Ok(())
    }
}

/// Opens a blob segment by segment, in order or at random.
pub struct BlobDecryptor {
    preamble: Preamble,
    cipher: SegmentCipher,
    next: u64,
}

impl BlobDecryptor {
    /// The preamble of this blob.
    pub fn preamble(&self) -> &Preamble {
        &self.preamble
    }

    /// Sealed bytes the next segment has, or `None` once all are opened.
    pub fn next_sealed_len(&self) -> Option<usize> {
        (self.next < self.cipher.count).then(|| self.preamble.sealed_len(self.next))
    }

    /// Opens the next segment in place (`buf`: sealed bytes in, plaintext out).
    ///
    /// # Errors
    /// [`Error::Integrity`] for a wrong length, a segment past the end, or any
    /// authentication failure.
    pub fn open_next(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.open_segment(self.next, buf)?;
        self.next += 1;
        Ok(())
    }

    /// Opens segment `index` in place, independently of the others (for HTTP
    /// `Range`; see [`Preamble::segment_span`]). Truncation of the stream as a whole
    /// is only detected by reading it to the end with [`open_next`](Self::open_next).
    ///
    /// # Errors
    /// [`Error::Integrity`] for a wrong length, an index past the end, or any
    /// authentication failure.
    pub fn open_segment(&self, index: u64, buf: &mut Vec<u8>) -> Result<()> {
        if index >= self.cipher.count || buf.len() != self.preamble.sealed_len(index) {
            return Err(Error::Integrity);
        }
        let nonce = self.cipher.nonce(index)?;
        self.cipher.key.open(nonce, &self.cipher.aad, buf)
    }
}
