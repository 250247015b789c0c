//! What the server stores for one document: a hidden id, and a payload carrying the
//! real document id (sealed in an *id box*, bound to the hidden id and the revision)
//! followed by the content envelope (sealed under the per-document key, bound to the
//! real id and the revision).
//!
//! The id box is needed because the per-document key is derived from the real id:
//! a device that has never seen a document must learn its id before it can open its
//! envelope. Tombstones are sealed too (their envelope holds the JSON text `null`,
//! which no live document can have since contents are JSON objects), so the server
//! can forge neither a document nor a deletion.
//!
//! Layout: `0x53 0x57 ‖ version (1) ‖ nonce (12) ‖ u16 box length ‖ id box ‖ envelope`.
//!
//! * **v2** (written): the id box is sealed under the [`IdBoxKey`] (its own HKDF
//!   label of the storage secret) with AAD `"SW" 0x02 ‖ u32 len ‖ hidden id ‖ u32 len
//!   ‖ rev`; its plaintext is `u16 id length ‖ id ‖ zero bytes` padded to a multiple
//!   of [`ID_BOX_BUCKET`] bytes, so the server learns the id length only to the bucket.
//! * **v1** (read only, for payloads already on servers): the id box key was
//!   `HMAC(id key, "soledad/v1/id-box")`, an HMAC under the same key and of the same
//!   shape as a hidden id, and the box held the bare id, leaking its exact length.

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{DocKey, IdBoxKey, IdKey, StorageSecret};
use crate::primitives::{AeadKey, KEY_LEN, NONCE_LEN, TAG_LEN, hmac_sha256, random_array};

/// Magic bytes of a server document payload ("SW").
pub const SERVER_DOC_MAGIC: [u8; 2] = [0x53, 0x57];
/// Current server document payload version (the one written).
pub const SERVER_DOC_VERSION: u8 = 2;
/// The first version, still opened.
const VERSION_1: u8 = 1;
/// The id-box plaintext (length prefix, id, zero padding) is a multiple of this many
/// bytes (v2).
pub const ID_BOX_BUCKET: usize = 64;
/// HMAC label deriving the v1 id-box key from the id key, and prefix of the v1 AAD.
const V1_ID_BOX_LABEL: &[u8] = b"soledad/v1/id-box";
/// Length of the id-length prefix inside a v2 id box.
const ID_LEN_PREFIX: usize = 2;
/// Envelope plaintext of a tombstone.
const TOMBSTONE: &str = "null";
/// Longest document id accepted inside an id box.
const MAX_DOC_ID_BYTES: usize = 4096;
const WHAT: &str = "server document";

/// Size of the padded v2 id-box plaintext for an id of `id_len` bytes.
const fn padded_box_len(id_len: usize) -> usize {
    (ID_LEN_PREFIX + id_len).div_ceil(ID_BOX_BUCKET) * ID_BOX_BUCKET
}

/// The keys a client needs to exchange documents with the server.
#[derive(Clone)]
pub struct SyncKeys {
    doc: DocKey,
    id: IdKey,
    id_box: IdBoxKey,
    /// The v1 id-box key, to open payloads written before v2.
    v1_id_box: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for SyncKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncKeys([REDACTED])")
    }
}

impl SyncKeys {
    /// Derives the document, id and id-box keys from the storage secret.
    pub fn new(secret: &StorageSecret) -> Self {
        Self::from_keys(secret.doc_key(), secret.id_key(), secret.id_box_key())
    }

    /// Builds from already derived keys (known-answer tests).
    pub fn from_keys(doc: DocKey, id: IdKey, id_box: IdBoxKey) -> Self {
        let v1_id_box = hmac_sha256(id.0.as_ref(), &[V1_ID_BOX_LABEL]);
        SyncKeys {
            doc,
            id,
            id_box,
            v1_id_box,
        }
    }

    /// The id the server sees for `doc_id` (see [`IdKey::server_doc_id`]).
    pub fn hidden_id(&self, doc_id: &str) -> String {
        self.id.server_doc_id(doc_id)
    }

    /// Seals a document for the server (current version): `content` is its JSON
    /// text, `None` for a tombstone. The hidden id to send with it is
    /// [`hidden_id`](Self::hidden_id).
    ///
    /// # Errors
    /// [`Error::TooLarge`] for an oversized id or content, [`Error::Random`].
    pub fn seal_for_server(
        &self,
        doc_id: &str,
        rev: &str,
        content: Option<&str>,
    ) -> Result<Vec<u8>> {
        self.seal_with_nonces(doc_id, rev, content, random_array()?, random_array()?)
    }

    /// [`seal_for_server`](Self::seal_for_server) with caller-chosen nonces, for
    /// known-answer vectors only.
    ///
    /// # Errors
    /// As [`seal_for_server`](Self::seal_for_server).
    #[doc(hidden)]
    pub fn danger_seal_with_nonces(
        &self,
        doc_id: &str,
        rev: &str,
        content: Option<&str>,
        box_nonce: [u8; NONCE_LEN],
        envelope_nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        self.seal_with_nonces(doc_id, rev, content, box_nonce, envelope_nonce)
    }

    fn seal_with_nonces(
        &self,
        doc_id: &str,
        rev: &str,
        content: Option<&str>,
        box_nonce: [u8; NONCE_LEN],
        envelope_nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        let too_large = || Error::TooLarge {
            what: "document id",
        };
        if doc_id.len() > MAX_DOC_ID_BYTES {
            return Err(too_large());
        }
        let hidden = self.hidden_id(doc_id);
        let id_len = u16::try_from(doc_id.len()).map_err(|_| too_large())?;
        let mut id_box = Vec::with_capacity(padded_box_len(doc_id.len()) + TAG_LEN);
        id_box.extend_from_slice(&id_len.to_be_bytes());
        id_box.extend_from_slice(doc_id.as_bytes());
        id_box.resize(padded_box_len(doc_id.len()), 0);
        let aad = box_aad(SERVER_DOC_VERSION, &hidden, rev)?;
        AeadKey::new(&self.id_box.0)?.seal(box_nonce, &aad, &mut id_box)?;
        let envelope = self.doc.danger_seal_with_nonce(
            doc_id,
            rev,
            content.unwrap_or(TOMBSTONE),
            envelope_nonce,
        )?;
        ServerDocParts::new(box_nonce, &id_box, &envelope).map(|parts| parts.to_bytes())
    }

    /// Opens a payload (v2, or v1 written by earlier clients) received under
    /// `hidden_id` at `rev`: returns the real document id and its JSON text (`None`
    /// for a tombstone).
    ///
    /// # Errors
    /// [`Error::Integrity`] if anything does not authenticate: the id box, the hidden
    /// id not matching the real id, the envelope for (id, rev), or any alteration (one
    /// error whatever failed); [`Error::UnknownVersion`] / [`Error::Malformed`] for
    /// bytes that are not such a payload.
    pub fn open_from_server(
        &self,
        hidden_id: &str,
        rev: &str,
        payload: &[u8],
    ) -> Result<(String, Option<String>)> {
        let parts = ServerDocParts::parse(payload)?;
        let mut id_box = Zeroizing::new(parts.id_box.to_vec());
        let key = if parts.version == VERSION_1 {
            &self.v1_id_box
        } else {
            &self.id_box.0
        };
        let aad = box_aad(parts.version, hidden_id, rev)?;
        AeadKey::new(key)?.open(parts.nonce, &aad, &mut id_box)?;
        let doc_id = if parts.version == VERSION_1 {
            id_box.as_slice()
        } else {
            unpad_id(&id_box)?
        };
        let doc_id = String::from_utf8(doc_id.to_vec()).map_err(|_| Error::Integrity)?;
        let expected = self.hidden_id(&doc_id);
        if !bool::from(expected.as_bytes().ct_eq(hidden_id.as_bytes())) {
            return Err(Error::Integrity);
        }
        let json = self.doc.open(&doc_id, rev, parts.envelope)?;
        let content = if json == TOMBSTONE { None } else { Some(json) };
        Ok((doc_id, content))
    }
}

/// The id inside an authenticated v2 id-box plaintext. Anything but the canonical
/// encoding (exact bucket size, zero padding) is refused: only a holder of the key
/// could have made it.
fn unpad_id(plain: &[u8]) -> Result<&[u8]> {
    let (len, rest) = plain
        .split_first_chunk::<ID_LEN_PREFIX>()
        .ok_or(Error::Integrity)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len > MAX_DOC_ID_BYTES || plain.len() != padded_box_len(len) {
        return Err(Error::Integrity);
    }
    let (id, padding) = rest.split_at_checked(len).ok_or(Error::Integrity)?;
    if padding.iter().any(|&b| b != 0) {
        return Err(Error::Integrity);
    }
    Ok(id)
}

/// A payload split into its parts, without any cryptographic check. Hidden hook for
/// fuzzing and for tools that inspect stored bytes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDocParts<'a> {
    /// Format version (1 or 2).
    pub version: u8,
    /// Nonce of the id box.
    pub nonce: [u8; NONCE_LEN],
    /// Sealed document id (ciphertext ‖ tag).
    pub id_box: &'a [u8],
    /// The content envelope.
    pub envelope: &'a [u8],
}

impl<'a> ServerDocParts<'a> {
    /// Current-version parts, checking the box length.
    fn new(nonce: [u8; NONCE_LEN], id_box: &'a [u8], envelope: &'a [u8]) -> Result<Self> {
        if !box_len_ok(SERVER_DOC_VERSION, id_box.len()) {
            return Err(Error::TooLarge {
                what: "document id",
            });
        }
        Ok(ServerDocParts {
            version: SERVER_DOC_VERSION,
            nonce,
            id_box,
            envelope,
        })
    }

    /// Splits `bytes`.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a wrong magic or lengths, [`Error::UnknownVersion`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let malformed = || Error::Malformed { what: WHAT };
        let (magic, rest) = bytes.split_at_checked(2).ok_or_else(malformed)?;
        if magic != SERVER_DOC_MAGIC {
            return Err(malformed());
        }
        let (&version, rest) = rest.split_first().ok_or_else(malformed)?;
        if version != VERSION_1 && version != SERVER_DOC_VERSION {
            return Err(Error::UnknownVersion {
                what: WHAT,
                version: u64::from(version),
            });
        }
        let (nonce, rest) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(malformed)?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(malformed)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if !box_len_ok(version, len) {
            return Err(malformed());
        }
        let (id_box, envelope) = rest.split_at_checked(len).ok_or_else(malformed)?;
        Ok(ServerDocParts {
            version,
            nonce: *nonce,
            id_box,
            envelope,
        })
    }

    /// Re-encodes the parts (the fuzz target checks `parse` ∘ `to_bytes` is identity).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(3 + NONCE_LEN + 2 + self.id_box.len() + self.envelope.len());
        out.extend_from_slice(&SERVER_DOC_MAGIC);
        out.push(self.version);
        out.extend_from_slice(&self.nonce);
        let len = u16::try_from(self.id_box.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.id_box);
        out.extend_from_slice(self.envelope);
        out
    }
}

/// Whether a sealed id box of `len` bytes is possible in `version`: v1 boxes hold
/// 0..=[`MAX_DOC_ID_BYTES`] bytes of id, v2 boxes whole buckets up to the largest id.
fn box_len_ok(version: u8, len: usize) -> bool {
    let Some(plain) = len.checked_sub(TAG_LEN) else {
        return false;
    };
    if version == VERSION_1 {
        plain <= MAX_DOC_ID_BYTES
    } else {
        plain != 0 && plain % ID_BOX_BUCKET == 0 && plain <= padded_box_len(MAX_DOC_ID_BYTES)
    }
}

fn box_aad(version: u8, hidden_id: &str, rev: &str) -> Result<Vec<u8>> {
    let too_large = || Error::TooLarge {
        what: "hidden id or rev",
    };
    let hidden_len = u32::try_from(hidden_id.len()).map_err(|_| too_large())?;
    let rev_len = u32::try_from(rev.len()).map_err(|_| too_large())?;
    let mut aad = Vec::with_capacity(V1_ID_BOX_LABEL.len() + 8 + hidden_id.len() + rev.len());
    if version == VERSION_1 {
        aad.extend_from_slice(V1_ID_BOX_LABEL);
    } else {
        aad.extend_from_slice(&SERVER_DOC_MAGIC);
        aad.push(version);
    }
    aad.extend_from_slice(&hidden_len.to_be_bytes());
    aad.extend_from_slice(hidden_id.as_bytes());
    aad.extend_from_slice(&rev_len.to_be_bytes());
    aad.extend_from_slice(rev.as_bytes());
    Ok(aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SyncKeys {
        SyncKeys::new(&StorageSecret::from_bytes([3u8; 64]))
    }

    #[test]
    fn round_trips_documents_and_tombstones() {
        let keys = keys();
        let hidden = keys.hidden_id("D-1");
        let payload = keys
            .seal_for_server("D-1", "r:1", Some(r#"{"a": 1}"#))
            .unwrap();
        assert_eq!(
            keys.open_from_server(&hidden, "r:1", &payload).unwrap(),
            ("D-1".to_owned(), Some(r#"{"a": 1}"#.to_owned()))
        );
        let tomb = keys.seal_for_server("D-1", "r:2", None).unwrap();
        assert_eq!(
            keys.open_from_server(&hidden, "r:2", &tomb).unwrap(),
            ("D-1".to_owned(), None)
        );
    }

    #[test]
    fn refuses_swapped_ids_revs_and_any_bit_flip() {
        let keys = keys();
        let payload = keys.seal_for_server("D-1", "r:1", Some("{}")).unwrap();
        let hidden = keys.hidden_id("D-1");
        let other = keys.hidden_id("D-2");
        assert!(matches!(
            keys.open_from_server(&other, "r:1", &payload),
            Err(Error::Integrity)
        ));
        assert!(matches!(
            keys.open_from_server(&hidden, "r:2", &payload),
            Err(Error::Integrity)
        ));
        for i in 3..payload.len() {
            let mut bad = payload.clone();
            bad[i] ^= 0x01;
            assert!(
                keys.open_from_server(&hidden, "r:1", &bad).is_err(),
                "byte {i}"
            );
        }
        for cut in [0, 1, 5, payload.len() / 2, payload.len() - 1] {
            assert!(
                keys.open_from_server(&hidden, "r:1", &payload[..cut])
                    .is_err()
            );
        }
    }

    #[test]
    fn the_id_box_key_is_no_value_the_server_sees() {
        use base64::Engine as _;
        let secret = StorageSecret::from_bytes([3u8; 64]);
        let keys = SyncKeys::new(&secret);
        assert_eq!(keys.id_box, secret.id_box_key());
        let seen = |doc_id: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(keys.hidden_id(doc_id))
                .unwrap()
        };
        // The v1 weakness: the hidden id of this id *was* the v1 id-box key.
        assert_eq!(seen("soledad/v1/id-box"), keys.v1_id_box.to_vec());
        for doc_id in ["soledad/v1/id-box", "id-box", "soledad/v2/id-box", ""] {
            assert_ne!(seen(doc_id), keys.id_box.0.to_vec(), "{doc_id}");
        }
        let payload = keys.seal_for_server("D-1", "r:1", Some("{}")).unwrap();
        assert_eq!(payload[2], SERVER_DOC_VERSION);
        assert_eq!(SERVER_DOC_VERSION, 2);
    }

    #[test]
    fn the_id_box_hides_the_id_length_up_to_its_bucket() {
        let keys = keys();
        let len = |doc_id: &str| {
            let payload = keys.seal_for_server(doc_id, "r:1", Some("{}")).unwrap();
            let (id, content) = keys
                .open_from_server(&keys.hidden_id(doc_id), "r:1", &payload)
                .unwrap();
            assert_eq!((id.as_str(), content.as_deref()), (doc_id, Some("{}")));
            ServerDocParts::parse(&payload).unwrap().id_box.len()
        };
        let short = len("a");
        assert_eq!(short, ID_BOX_BUCKET + TAG_LEN);
        assert_eq!(len(&"b".repeat(34)), short);
        assert_eq!(len(&"c".repeat(ID_BOX_BUCKET - 2)), short);
        assert_eq!(len(&"d".repeat(ID_BOX_BUCKET - 1)), short + ID_BOX_BUCKET);
        assert_eq!(
            len(&"e".repeat(MAX_DOC_ID_BYTES)),
            padded_box_len(MAX_DOC_ID_BYTES) + TAG_LEN
        );
        assert!(matches!(
            keys.seal_for_server(&"f".repeat(MAX_DOC_ID_BYTES + 1), "r:1", None),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn a_different_secret_opens_nothing() {
        let payload = keys().seal_for_server("D-1", "r:1", Some("{}")).unwrap();
        let stranger = SyncKeys::new(&StorageSecret::from_bytes([4u8; 64]));
        let hidden = keys().hidden_id("D-1");
        assert!(matches!(
            stranger.open_from_server(&hidden, "r:1", &payload),
            Err(Error::Integrity)
        ));
    }
}
