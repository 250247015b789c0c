//! The storage secret and the sub-keys derived from it.
//!
//! One 64-byte random storage secret is made per account. Every key used anywhere is
//! derived from it with HKDF-SHA256 (salt [`HKDF_SALT`], info = the key's label), so the
//! keys are independent: knowing the SQLCipher key tells nothing about the document key.
//!
//! All key types zero their bytes on drop, print as `[REDACTED]` in `Debug`, and
//! have no `Display`/`Serialize`.

use std::fmt;

use base64::Engine as _;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::primitives::{KEY_LEN, hmac_sha256, random_fill};

/// Length of the storage secret in bytes.
pub const STORAGE_SECRET_LEN: usize = 64;

/// HKDF salt used to derive every sub-key from the storage secret (domain separation).
pub const HKDF_SALT: &[u8] = b"soledad/v1/storage-secret";

/// HKDF info label of the SQLCipher raw key.
pub const LABEL_LOCAL_DB: &[u8] = b"local-db";
/// HKDF info label of the document key-derivation key.
pub const LABEL_DOC: &[u8] = b"doc";
/// HKDF info label of the blob key-derivation key.
pub const LABEL_BLOB: &[u8] = b"blob";
/// HKDF info label of the server-side id key.
pub const LABEL_ID: &[u8] = b"id";
/// HKDF info label of the key sealing the id box of a sync payload (v2).
pub const LABEL_ID_BOX: &[u8] = b"id-box";
/// HKDF info label of the incoming box X25519 identity (epoch 0; epoch `n > 0`
/// appends `":<n>"`).
pub const LABEL_INCOMING: &[u8] = b"incoming";

/// The account's root secret: 64 random bytes, made once, wrapped by the passphrase
/// in `soledad.json` and (optionally) by a recovery code.
#[derive(Clone)]
pub struct StorageSecret(Zeroizing<[u8; STORAGE_SECRET_LEN]>);

impl StorageSecret {
    /// Makes a fresh storage secret from the operating system's RNG.
    ///
    /// # Errors
    /// [`Error::Random`](crate::Error::Random) if the RNG fails.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; STORAGE_SECRET_LEN]);
        random_fill(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// Wraps existing bytes (known-answer tests, imports). The caller's copy is not
    /// zeroed by this call.
    pub fn from_bytes(bytes: [u8; STORAGE_SECRET_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw secret bytes. Only for wrapping it; never log or print them.
    pub fn expose_bytes(&self) -> &[u8; STORAGE_SECRET_LEN] {
        &self.0
    }

    /// HKDF-SHA256(salt = [`HKDF_SALT`], ikm = secret, info = label, L = 32).
    /// For a 32-byte output HKDF is exactly `T(1) = HMAC(HMAC(salt, ikm), info ‖ 0x01)`
    /// (RFC 5869 §2.3), written out here so the derivation is infallible; a unit test
    /// checks it against the `hkdf` crate.
    pub(crate) fn derive(&self, label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let prk = hmac_sha256(HKDF_SALT, &[self.0.as_ref()]);
        hmac_sha256(prk.as_ref(), &[label, &[1u8]])
    }

    /// The 32-byte SQLCipher raw key (label `local-db`) for both local databases.
    pub fn local_db_key(&self) -> LocalDbKey {
        LocalDbKey(self.derive(LABEL_LOCAL_DB))
    }

    /// The document key (label `doc`): per-document keys are HMAC-SHA256(doc key, doc_id).
    pub fn doc_key(&self) -> DocKey {
        DocKey(self.derive(LABEL_DOC))
    }

    /// The blob key (label `blob`): per-blob keys are derived from it, the blob id and
    /// a random salt.
    pub fn blob_key(&self) -> BlobKey {
        BlobKey(self.derive(LABEL_BLOB))
    }

    /// The id key (label `id`): hides document ids from the server.
    pub fn id_key(&self) -> IdKey {
        IdKey(self.derive(LABEL_ID))
    }

    /// The id-box key (label `id-box`): seals the real document id inside each sync
    /// payload. Its own label, so no value the server sees (such as a hidden id, an
    /// HMAC under the id key) can equal it.
    pub fn id_box_key(&self) -> IdBoxKey {
        IdBoxKey(self.derive(LABEL_ID_BOX))
    }
}

impl PartialEq for StorageSecret {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().ct_eq(other.0.as_ref()).into()
    }
}

impl Eq for StorageSecret {}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(pub(crate) Zeroizing<[u8; KEY_LEN]>);

        impl $name {
            /// Wraps raw key bytes (known-answer tests). Normal code derives keys from
            /// a [`StorageSecret`].
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(Zeroizing::new(bytes))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }

        impl PartialEq for $name {
            /// Constant-time comparison.
            fn eq(&self, other: &Self) -> bool {
                self.0.as_ref().ct_eq(other.0.as_ref()).into()
            }
        }

        impl Eq for $name {}
    };
}

impl fmt::Debug for StorageSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageSecret([REDACTED])")
    }
}

key_type!(
    /// 32-byte raw SQLCipher key for the local databases.
    LocalDbKey
);
key_type!(
    /// Document key-derivation key; seals and opens document envelopes.
    DocKey
);
key_type!(
    /// Blob key-derivation key; makes blob stream encryptors and decryptors.
    BlobKey
);
key_type!(
    /// Key that maps document ids to the opaque ids the server sees.
    IdKey
);
key_type!(
    /// Key that seals the real document id inside a sync payload (the id box).
    IdBoxKey
);

impl LocalDbKey {
    /// The raw key bytes, for `PRAGMA key = "x'…'"`. Never log them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as 64 lowercase hex digits, zeroed on drop, ready for
    /// `PRAGMA key = "x'<hex>'"`.
    pub fn to_hex(&self) -> Zeroizing<String> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = Zeroizing::new(String::with_capacity(KEY_LEN * 2));
        for byte in self.0.iter() {
            s.push(char::from(HEX[usize::from(byte >> 4)]));
            s.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        s
    }
}

impl IdKey {
    /// The id the server sees for `doc_id`: base64url (no padding) of
    /// HMAC-SHA256(id key, doc_id), 43 characters, valid as a u1db document id.
    pub fn server_doc_id(&self, doc_id: &str) -> String {
        let mac = hmac_sha256(self.0.as_ref(), &[doc_id.as_bytes()]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::hkdf_sha256;

    #[test]
    fn derive_matches_rfc5869_hkdf() {
        let secret = StorageSecret::from_bytes([7u8; STORAGE_SECRET_LEN]);
        for label in [
            LABEL_LOCAL_DB,
            LABEL_DOC,
            LABEL_BLOB,
            LABEL_ID,
            LABEL_ID_BOX,
            LABEL_INCOMING,
        ] {
            let mut expected = [0u8; KEY_LEN];
            hkdf_sha256(HKDF_SALT, secret.expose_bytes(), &[label], &mut expected).unwrap();
            assert_eq!(*secret.derive(label), expected);
        }
    }

    #[test]
    fn labels_give_distinct_keys_and_debug_is_redacted() {
        let secret = StorageSecret::from_bytes([9u8; STORAGE_SECRET_LEN]);
        let keys = [
            *secret.local_db_key().0,
            *secret.doc_key().0,
            *secret.blob_key().0,
            *secret.id_key().0,
            *secret.id_box_key().0,
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(format!("{secret:?}"), "StorageSecret([REDACTED])");
        assert_eq!(format!("{:?}", secret.doc_key()), "DocKey([REDACTED])");
        assert!(!format!("{:?}", secret.local_db_key()).contains("09"));
    }
}
