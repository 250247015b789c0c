//! The document envelope: how one document's JSON travels to and rests on the server.
//!
//! ```text
//! offset  size  field
//! 0       2     magic 0x53 0x44 ("SD")
//! 2       1     version = 0x01
//! 3       12    nonce (random)
//! 15      n     AES-256-GCM ciphertext of the padded plaintext
//! 15+n    16    tag
//! padded plaintext = u32 BE content length ‖ content ‖ zeros, total padme(4 + length)
//! key = HMAC-SHA256(doc key, doc_id)
//! AAD = magic ‖ version ‖ u32 BE len(doc_id) ‖ doc_id ‖ u32 BE len(rev) ‖ rev
//! ```
//! Because the AAD binds the id and revision, the server cannot move an envelope to
//! another document, or replay an old revision under a new one.

use crate::error::{Error, Result};
use crate::keys::DocKey;
use crate::padding::padme;
use crate::primitives::{AeadKey, NONCE_LEN, TAG_LEN, hmac_sha256, random_array};

/// Envelope magic bytes ("SD").
pub const ENVELOPE_MAGIC: [u8; 2] = [0x53, 0x44];
/// Envelope format version written by this build.
pub const ENVELOPE_VERSION: u8 = 1;
/// Largest document content (JSON bytes) an envelope may carry (256 MiB).
pub const MAX_DOC_CONTENT_BYTES: usize = 256 << 20;
/// Largest envelope accepted by [`DocKey::open`].
pub const MAX_ENVELOPE_BYTES: usize = HEADER_LEN + NONCE_LEN + MAX_PADDED + TAG_LEN;

const WHAT: &str = "document envelope";
const HEADER_LEN: usize = 3;
const LEN_PREFIX: usize = 4;
// padme adds < 12 %; 9/8 is a simple upper bound for the cap.
const MAX_PADDED: usize = (MAX_DOC_CONTENT_BYTES + LEN_PREFIX) / 8 * 9;

/// The unauthenticated outer structure of an envelope. Hidden hook for fuzzing
/// (parse, re-encode, compare); applications use [`DocKey::seal`]/[`DocKey::open`].
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub struct EnvelopeParts<'a> {
    /// Nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext ‖ tag.
    pub sealed: &'a [u8],
}

impl<'a> EnvelopeParts<'a> {
    /// Splits an envelope, checking magic, version and lengths only.
    ///
    /// # Errors
    /// [`Error::Malformed`], [`Error::UnknownVersion`], [`Error::TooLarge`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let malformed = Error::Malformed { what: WHAT };
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Error::TooLarge { what: WHAT });
        }
        let (magic, rest) = bytes
            .split_at_checked(2)
            .ok_or(Error::Malformed { what: WHAT })?;
        if magic != ENVELOPE_MAGIC {
            return Err(malformed);
        }
        let (version, rest) = rest.split_first().ok_or(Error::Malformed { what: WHAT })?;
        if *version != ENVELOPE_VERSION {
            return Err(Error::UnknownVersion {
                what: WHAT,
                version: u64::from(*version),
            });
        }
        let (nonce, sealed) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(Error::Malformed { what: WHAT })?;
        if sealed.len() < LEN_PREFIX + TAG_LEN {
            return Err(malformed);
        }
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| Error::Malformed { what: WHAT })?;
        Ok(Self { nonce, sealed })
    }

    /// Re-encodes the parts.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + self.sealed.len());
        out.extend_from_slice(&ENVELOPE_MAGIC);
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(self.sealed);
        out
    }
}

impl DocKey {
    /// Encrypts one document's JSON for `(doc_id, rev)` with a random nonce.
    ///
    /// # Errors
    /// [`Error::TooLarge`] over [`MAX_DOC_CONTENT_BYTES`] or for an id/rev over 4 GiB;
    /// [`Error::Random`].
    pub fn seal(&self, doc_id: &str, rev: &str, json: &str) -> Result<Vec<u8>> {
        self.seal_with_nonce(doc_id, rev, json, random_array()?)
    }

    /// [`seal`](Self::seal) with a caller-chosen nonce, for known-answer vectors only.
    /// Reusing a nonce for the same document breaks confidentiality and integrity.
    ///
    /// # Errors
    /// As [`seal`](Self::seal).
    #[doc(hidden)]
    pub fn danger_seal_with_nonce(
        &self,
        doc_id: &str,
        rev: &str,
        json: &str,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        self.seal_with_nonce(doc_id, rev, json, nonce)
    }

    fn seal_with_nonce(
        &self,
        doc_id: &str,
        rev: &str,
        json: &str,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        if json.len() > MAX_DOC_CONTENT_BYTES {
            return Err(Error::TooLarge { what: "document" });
        }
        let content_len =
            u32::try_from(json.len()).map_err(|_| Error::TooLarge { what: "document" })?;
        let aad = aad(doc_id, rev)?;
        let key = self.doc_cipher(doc_id)?;
        let unpadded = LEN_PREFIX + json.len();
        let padded = usize::try_from(padme(unpadded as u64))
            .map_err(|_| Error::TooLarge { what: "document" })?;
        let body_start = HEADER_LEN + NONCE_LEN;
        let mut out = Vec::with_capacity(body_start + padded + TAG_LEN);
        out.extend_from_slice(&ENVELOPE_MAGIC);
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&content_len.to_be_bytes());
        out.extend_from_slice(json.as_bytes());
        out.resize(body_start + padded, 0);
        let body = out
            .get_mut(body_start..)
            .ok_or(Error::Malformed { what: WHAT })?;
        let tag = key.seal_slice(nonce, &aad, body)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts an envelope made by [`seal`](Self::seal) for the same `(doc_id, rev)`.
    ///
    /// # Errors
    /// [`Error::Integrity`] for a wrong doc_id, rev or key, or any alteration (one
    /// error, whatever failed); [`Error::UnknownVersion`] for a newer format;
    /// [`Error::Malformed`] / [`Error::TooLarge`] for bytes that are not an envelope.
    pub fn open(&self, doc_id: &str, rev: &str, envelope: &[u8]) -> Result<String> {
        let parts = EnvelopeParts::parse(envelope)?;
        let aad = aad(doc_id, rev)?;
        let key = self.doc_cipher(doc_id)?;
        let mut buf = parts.sealed.to_vec();
        let plain_len = key.open_slice(parts.nonce, &aad, &mut buf)?;
        buf.truncate(plain_len);
        let content = unpad(buf)?;
        String::from_utf8(content).map_err(|_| Error::Malformed { what: WHAT })
    }

    /// The per-document AES key: HMAC-SHA256(doc key, doc_id).
    fn doc_cipher(&self, doc_id: &str) -> Result<AeadKey> {
        let key = hmac_sha256(self.0.as_ref(), &[doc_id.as_bytes()]);
        AeadKey::new(&key)
    }
}

/// Checks and strips the length prefix and the zero padding (authenticated data,
/// so a failure here means a bug on the sealing side, reported as malformed).
fn unpad(mut buf: Vec<u8>) -> Result<Vec<u8>> {
    let malformed = || Error::Malformed { what: WHAT };
    let prefix: [u8; LEN_PREFIX] = buf
        .get(..LEN_PREFIX)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(malformed)?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).map_err(|_| malformed())?;
    let end = LEN_PREFIX.checked_add(len).ok_or_else(malformed)?;
    let expected_padded = padme(end as u64);
    if buf.len() as u64 != expected_padded {
        return Err(malformed());
    }
    let padding = buf.get(end..).ok_or_else(malformed)?;
    if padding.iter().any(|b| *b != 0) {
        return Err(malformed());
    }
    buf.truncate(end);
    buf.drain(..LEN_PREFIX);
    Ok(buf)
}

fn aad(doc_id: &str, rev: &str) -> Result<Vec<u8>> {
    let too_large = || Error::TooLarge {
        what: "doc_id or rev",
    };
    let id_len = u32::try_from(doc_id.len()).map_err(|_| too_large())?;
    let rev_len = u32::try_from(rev.len()).map_err(|_| too_large())?;
    let mut aad = Vec::with_capacity(HEADER_LEN + 8 + doc_id.len() + rev.len());
    aad.extend_from_slice(&ENVELOPE_MAGIC);
    aad.push(ENVELOPE_VERSION);
    aad.extend_from_slice(&id_len.to_be_bytes());
    aad.extend_from_slice(doc_id.as_bytes());
    aad.extend_from_slice(&rev_len.to_be_bytes());
    aad.extend_from_slice(rev.as_bytes());
    Ok(aad)
}
