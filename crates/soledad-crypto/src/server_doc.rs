//! What the server stores for one document: a hidden id, and a payload carrying the
//! real document id (sealed under a key derived from the id key, bound to the hidden
//! id and the revision) followed by the content envelope (sealed under the
//! per-document key, bound to the real id and the revision).
//!
//! The id box is needed because the per-document key is derived from the real id:
//! a device that has never seen a document must learn its id before it can open its
//! envelope. Tombstones are sealed too (their envelope holds the JSON text `null`,
//! which no live document can have since contents are JSON objects), so the server
//! can forge neither a document nor a deletion.
//!
//! Layout (v1): `0x53 0x57 ‖ version (1) ‖ nonce (12) ‖ u16 box length ‖ id box ‖ envelope`.

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{DocKey, IdKey, StorageSecret};
use crate::primitives::{AeadKey, KEY_LEN, NONCE_LEN, TAG_LEN, hmac_sha256, random_array};

/// Magic bytes of a server document payload ("SW").
pub const SERVER_DOC_MAGIC: [u8; 2] = [0x53, 0x57];
/// Current server document payload version.
pub const SERVER_DOC_VERSION: u8 = 1;
/// HMAC label deriving the id-box key from the id key.
const ID_BOX_LABEL: &[u8] = b"soledad/v1/id-box";
/// Envelope plaintext of a tombstone.
const TOMBSTONE: &str = "null";
/// Longest document id accepted inside an id box.
const MAX_DOC_ID_BYTES: usize = 4096;
const WHAT: &str = "server document";

/// The keys a client needs to exchange documents with the server.
#[derive(Clone)]
pub struct SyncKeys {
    doc: DocKey,
    id: IdKey,
    id_box: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for SyncKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncKeys([REDACTED])")
    }
}

impl SyncKeys {
    /// Derives the document, id and id-box keys from the storage secret.
    pub fn new(secret: &StorageSecret) -> Self {
        Self::from_keys(secret.doc_key(), secret.id_key())
    }

    /// Builds from already derived keys (known-answer tests).
    pub fn from_keys(doc: DocKey, id: IdKey) -> Self {
        let id_box = hmac_sha256(id.0.as_ref(), &[ID_BOX_LABEL]);
        SyncKeys { doc, id, id_box }
    }

    /// The id the server sees for `doc_id` (see [`IdKey::server_doc_id`]).
    pub fn hidden_id(&self, doc_id: &str) -> String {
        self.id.server_doc_id(doc_id)
    }

    /// Seals a document for the server: `content` is its JSON text, `None` for a
    /// tombstone. The hidden id to send with it is [`hidden_id`](Self::hidden_id).
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
        if doc_id.len() > MAX_DOC_ID_BYTES {
            return Err(Error::TooLarge {
                what: "document id",
            });
        }
        let hidden = self.hidden_id(doc_id);
        let mut id_box = doc_id.as_bytes().to_vec();
        AeadKey::new(&self.id_box)?.seal(box_nonce, &box_aad(&hidden, rev)?, &mut id_box)?;
        let box_len = u16::try_from(id_box.len()).map_err(|_| Error::TooLarge {
            what: "document id",
        })?;
        let envelope = self.doc.danger_seal_with_nonce(
            doc_id,
            rev,
            content.unwrap_or(TOMBSTONE),
            envelope_nonce,
        )?;
        let mut out = Vec::with_capacity(3 + NONCE_LEN + 2 + id_box.len() + envelope.len());
        out.extend_from_slice(&SERVER_DOC_MAGIC);
        out.push(SERVER_DOC_VERSION);
        out.extend_from_slice(&box_nonce);
        out.extend_from_slice(&box_len.to_be_bytes());
        out.extend_from_slice(&id_box);
        out.extend_from_slice(&envelope);
        Ok(out)
    }

    /// Opens a payload received under `hidden_id` at `rev`: returns the real document
    /// id and its JSON text (`None` for a tombstone).
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
        let mut id_box = parts.id_box.to_vec();
        AeadKey::new(&self.id_box)?.open(parts.nonce, &box_aad(hidden_id, rev)?, &mut id_box)?;
        let doc_id = String::from_utf8(id_box).map_err(|_| Error::Integrity)?;
        let expected = self.hidden_id(&doc_id);
        if !bool::from(expected.as_bytes().ct_eq(hidden_id.as_bytes())) {
            return Err(Error::Integrity);
        }
        let json = self.doc.open(&doc_id, rev, parts.envelope)?;
        let content = if json == TOMBSTONE { None } else { Some(json) };
        Ok((doc_id, content))
    }
}

/// A payload split into its parts, without any cryptographic check. Hidden hook for
/// fuzzing and for tools that inspect stored bytes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDocParts<'a> {
    /// Nonce of the id box.
    pub nonce: [u8; NONCE_LEN],
    /// Sealed document id (ciphertext ‖ tag).
    pub id_box: &'a [u8],
    /// The content envelope.
    pub envelope: &'a [u8],
}

impl<'a> ServerDocParts<'a> {
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
        let (version, rest) = rest.split_first().ok_or_else(malformed)?;
        if *version != SERVER_DOC_VERSION {
            return Err(Error::UnknownVersion {
                what: WHAT,
                version: u64::from(*version),
            });
        }
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN).ok_or_else(malformed)?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(malformed)?;
        let len = u16::from_be_bytes(len.try_into().map_err(|_| malformed())?);
        let len = usize::from(len);
        if !(TAG_LEN..=TAG_LEN + MAX_DOC_ID_BYTES).contains(&len) {
            return Err(malformed());
        }
        let (id_box, envelope) = rest.split_at_checked(len).ok_or_else(malformed)?;
        Ok(ServerDocParts {
            nonce: nonce.try_into().map_err(|_| malformed())?,
            id_box,
            envelope,
        })
    }

    /// Re-encodes the parts (the fuzz target checks `parse` ∘ `to_bytes` is identity).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(3 + NONCE_LEN + 2 + self.id_box.len() + self.envelope.len());
        out.extend_from_slice(&SERVER_DOC_MAGIC);
        out.push(SERVER_DOC_VERSION);
        out.extend_from_slice(&self.nonce);
        let len = u16::try_from(self.id_box.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.id_box);
        out.extend_from_slice(self.envelope);
        out
    }
}

fn box_aad(hidden_id: &str, rev: &str) -> Result<Vec<u8>> {
    let too_large = || Error::TooLarge {
        what: "hidden id or rev",
    };
    let hidden_len = u32::try_from(hidden_id.len()).map_err(|_| too_large())?;
    let rev_len = u32::try_from(rev.len()).map_err(|_| too_large())?;
    let mut aad = Vec::with_capacity(ID_BOX_LABEL.len() + 8 + hidden_id.len() + rev.len());
    aad.extend_from_slice(ID_BOX_LABEL);
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
