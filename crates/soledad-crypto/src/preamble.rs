//! The blob preamble: a small versioned binary header in front of every stored blob.
//!
//! ```text
//! offset  size  field
//! 0       2     magic 0x13 0x37
//! 2       1     version = 0x01
//! 3       1     scheme: 0x01 symkey | 0x02 external
//! 4       1     method: 0x01 aes-256-gcm (STREAM, 64 KiB segments) | 0x02 pgp
//! 5       1     L = blob_id length, 1..=255
//! 6       L     blob_id, ASCII [A-Za-z0-9.%_-]
//! 6+L     8     plaintext size, u64 big-endian
//! 14+L    32    salt (symkey only): per-blob key derivation input
//! ```
//! Valid pairs are (symkey, aes-256-gcm) — encrypted by the client with the blob key —
//! and (external, pgp) — delivered by a trusted service (incoming box) and stored as
//! delivered. The server builds the latter with [`Preamble::external`] and reads any
//! preamble with [`Preamble::parse`]; it never needs a key.

use crate::error::{Error, Result};

/// Preamble magic bytes.
pub const PREAMBLE_MAGIC: [u8; 2] = [0x13, 0x37];
/// Preamble format version written by this build.
pub const PREAMBLE_VERSION: u8 = 1;
/// Length of the per-blob salt of `symkey` blobs.
pub const BLOB_SALT_LEN: usize = 32;
/// Longest blob id, in bytes.
pub const MAX_BLOB_ID_LEN: usize = 255;
/// Longest possible encoded preamble: read this many bytes (or the whole blob if it
/// is shorter) and hand them to [`Preamble::parse`].
pub const MAX_PREAMBLE_LEN: usize = FIXED_LEN + MAX_BLOB_ID_LEN + 8 + BLOB_SALT_LEN;

const WHAT: &str = "blob preamble";
/// magic, version, scheme, method, blob id length.
pub(crate) const FIXED_LEN: usize = 6;

/// Who encrypted the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// Encrypted by a Soledad client with a key derived from its storage secret.
    Symkey,
    /// Delivered by a third party (e.g. the mail MX, OpenPGP-encrypted); stored and
    /// handed to the consumer as is.
    External,
}

/// How the content after the preamble is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// STREAM-segmented AES-256-GCM with 64 KiB segments (see `docs/crypto.md`).
    Aes256Gcm,
    /// OpenPGP, done by the delivering service; opaque to this crate.
    Pgp,
}

impl Scheme {
    fn code(self) -> u8 {
        match self {
            Scheme::Symkey => 0x01,
            Scheme::External => 0x02,
        }
    }
}

impl Method {
    fn code(self) -> u8 {
        match self {
            Method::Aes256Gcm => 0x01,
            Method::Pgp => 0x02,
        }
    }
}

/// A parsed blob preamble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preamble {
    scheme: Scheme,
    method: Method,
    blob_id: String,
    plaintext_size: u64,
    salt: Option<[u8; BLOB_SALT_LEN]>,
}

impl Preamble {
    /// The preamble of an `external` blob (scheme external, method pgp) of
    /// `plaintext_size` bytes: what the server prepends to an incoming-box delivery,
    /// stored as delivered.
    ///
    /// ```
    /// use soledad_crypto::{Preamble, Scheme};
    ///
    /// let preamble = Preamble::external("mx-42", 1234)?;
    /// let mut stored = preamble.to_bytes();
    /// stored.extend_from_slice(b"...the delivered bytes...");
    /// let (parsed, used) = Preamble::parse(&stored)?;
    /// assert_eq!(parsed.scheme(), Scheme::External);
    /// assert_eq!((parsed.blob_id(), parsed.plaintext_size()), ("mx-42", 1234));
    /// assert_eq!(used, preamble.encoded_len());
    /// # Ok::<(), soledad_crypto::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidBlobId`].
    pub fn external(blob_id: &str, plaintext_size: u64) -> Result<Self> {
        validate_blob_id(blob_id.as_bytes())?;
        Ok(Self {
            scheme: Scheme::External,
            method: Method::Pgp,
            blob_id: blob_id.to_owned(),
            plaintext_size,
            salt: None,
        })
    }

    pub(crate) fn symkey(
        blob_id: &str,
        plaintext_size: u64,
        salt: [u8; BLOB_SALT_LEN],
    ) -> Result<Self> {
        validate_blob_id(blob_id.as_bytes())?;
        Ok(Self {
            scheme: Scheme::Symkey,
            method: Method::Aes256Gcm,
            blob_id: blob_id.to_owned(),
            plaintext_size,
            salt: Some(salt),
        })
    }

    /// Who encrypted the blob.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// How the body is encrypted.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The blob id the preamble names (authenticated for `symkey` blobs).
    pub fn blob_id(&self) -> &str {
        &self.blob_id
    }

    /// Size of the content before encryption (for `external`, the delivered size).
    pub fn plaintext_size(&self) -> u64 {
        self.plaintext_size
    }

    pub(crate) fn salt(&self) -> Option<&[u8; BLOB_SALT_LEN]> {
        self.salt.as_ref()
    }

    /// Length of [`to_bytes`](Self::to_bytes).
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.blob_id.len() + 8 + self.salt.map_or(0, |s| s.len())
    }

    /// Encodes the preamble.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&PREAMBLE_MAGIC);
        out.push(PREAMBLE_VERSION);
        out.push(self.scheme.code());
        out.push(self.method.code());
        // validate_blob_id guarantees 1..=255 bytes.
        out.push(u8::try_from(self.blob_id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.blob_id.as_bytes());
        out.extend_from_slice(&self.plaintext_size.to_be_bytes());
        if let Some(salt) = &self.salt {
            out.extend_from_slice(salt);
        }
        out
    }

    /// Parses a preamble at the start of `bytes` (anything after it is ignored) and
    /// returns it with the number of bytes it took.
    ///
    /// # Errors
    /// [`Error::Malformed`] (bad magic, short input, bad field),
    /// [`Error::UnknownVersion`], [`Error::UnsupportedScheme`],
    /// [`Error::UnsupportedCipher`] (unknown method or a scheme/method pair that is
    /// not allowed), [`Error::InvalidBlobId`].
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize)> {
        let mut cur = Cursor::new(bytes);
        let magic = cur.take(2)?;
        if magic != PREAMBLE_MAGIC {
            return Err(Error::Malformed { what: WHAT });
        }
        let version = cur.byte()?;
        if version != PREAMBLE_VERSION {
            return Err(Error::UnknownVersion {
                what: WHAT,
                version: u64::from(version),
            });
        }
        let scheme = match cur.byte()? {
            0x01 => Scheme::Symkey,
            0x02 => Scheme::External,
            _ => return Err(Error::UnsupportedScheme),
        };
        let method = match cur.byte()? {
            0x01 => Method::Aes256Gcm,
            0x02 => Method::Pgp,
            _ => return Err(Error::UnsupportedCipher),
        };
        match (scheme, method) {
            (Scheme::Symkey, Method::Aes256Gcm) | (Scheme::External, Method::Pgp) => {}
            _ => return Err(Error::UnsupportedCipher),
        }
        let id_len = usize::from(cur.byte()?);
        let id = cur.take(id_len)?;
        validate_blob_id(id)?;
        let blob_id = std::str::from_utf8(id)
            .map_err(|_| Error::InvalidBlobId)?
            .to_owned();
        let size: [u8; 8] = cur
            .take(8)?
            .try_into()
            .map_err(|_| Error::Malformed { what: WHAT })?;
        let plaintext_size = u64::from_be_bytes(size);
        let salt = match scheme {
            Scheme::Symkey => Some(
                cur.take(BLOB_SALT_LEN)?
                    .try_into()
                    .map_err(|_| Error::Malformed { what: WHAT })?,
            ),
            Scheme::External => None,
        };
        let preamble = Self {
            scheme,
            method,
            blob_id,
            plaintext_size,
            salt,
        };
        Ok((preamble, cur.consumed()))
    }

    /// Total preamble length announced by its first [`FIXED_LEN`] bytes (used by the
    /// streaming decryptor to read exactly the preamble).
    pub(crate) fn len_from_fixed(fixed: &[u8]) -> Result<usize> {
        let mut cur = Cursor::new(fixed);
        let magic = cur.take(2)?;
        if magic != PREAMBLE_MAGIC {
            return Err(Error::Malformed { what: WHAT });
        }
        let version = cur.byte()?;
        if version != PREAMBLE_VERSION {
            return Err(Error::UnknownVersion {
                what: WHAT,
                version: u64::from(version),
            });
        }
        let scheme = cur.byte()?;
        let _method = cur.byte()?;
        let id_len = usize::from(cur.byte()?);
        let salt = if scheme == Scheme::Symkey.code() {
            BLOB_SALT_LEN
        } else {
            0
        };
        Ok(FIXED_LEN + id_len + 8 + salt)
    }
}

/// Blob ids follow u1db's document id rule: 1..=255 bytes of `[A-Za-z0-9.%_-]`.
pub(crate) fn validate_blob_id(id: &[u8]) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_BLOB_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'%' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidBlobId)
    }
}

/// Bounds-checked reader over untrusted bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Error::Malformed { what: WHAT })?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(Error::Malformed { what: WHAT })?;
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        self.take(1)?
            .first()
            .copied()
            .ok_or(Error::Malformed { what: WHAT })
    }

    fn consumed(&self) -> usize {
        self.pos
    }
}
