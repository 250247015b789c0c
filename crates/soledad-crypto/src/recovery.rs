//! Recovery codes: a second, passphrase-independent wrapping of the storage secret.
//!
//! A code is 160 random bits written as 32 Crockford base32 characters plus a 4-
//! character checksum, in groups of four:
//! `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-CCCC`. Parsing ignores case, spaces and
//! dashes, and reads `O` as `0` and `I`/`L` as `1`; a typo fails the 20-bit checksum
//! ([`Error::RecoveryCodeChecksum`]) instead of silently deriving a wrong key.
//!
//! The code is high-entropy, so no slow KDF is needed: HKDF-SHA256 derives the
//! wrapping key (label `recovery-wrap`) and the shared-store id (label `recovery-id`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::backup::Backup;
use crate::error::{Error, Result};
use crate::keys::{STORAGE_SECRET_LEN, StorageSecret};
use crate::primitives::{AeadKey, KEY_LEN, NONCE_LEN, TAG_LEN, hkdf_sha256, random_array, sha256};

/// Random bytes in a recovery code (160 bits).
pub const RECOVERY_CODE_BYTES: usize = 20;
/// Format version of the recovery backup blob.
pub const RECOVERY_BLOB_VERSION: u64 = 1;
/// Largest recovery blob accepted by the parser.
pub const MAX_RECOVERY_BLOB_BYTES: usize = 4 * 1024;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DATA_CHARS: usize = RECOVERY_CODE_BYTES * 8 / 5;
const CHECK_CHARS: usize = 4;
const HKDF_SALT: &[u8] = b"soledad/v1/recovery-code";
const CHECKSUM_LABEL: &[u8] = b"soledad/v1/recovery-code-checksum";
const WHAT: &str = "recovery backup";
const KIND: &str = "soledad-recovery";
const CIPHER: &str = "aes-256-gcm";

/// A recovery code. Zeroed on drop; `Debug` is redacted and there is no `Display`:
/// show it to the user once with [`expose_text`](Self::expose_text).
#[derive(Clone)]
pub struct RecoveryCode(Zeroizing<[u8; RECOVERY_CODE_BYTES]>);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

impl PartialEq for RecoveryCode {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_ref().ct_eq(other.0.as_ref()).into()
    }
}

impl Eq for RecoveryCode {}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Json {
    version: u64,
    kind: String,
    cipher: String,
    iv: String,
    secrets: String,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u64,
}

impl RecoveryCode {
    /// Makes a new random code.
    ///
    /// # Errors
    /// [`Error::Random`].
    pub fn generate() -> Result<Self> {
        Ok(Self(Zeroizing::new(random_array()?)))
    }

    /// Wraps raw code bytes (known-answer tests).
    pub fn from_bytes(bytes: [u8; RECOVERY_CODE_BYTES]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses what the user typed: case-insensitive, spaces and dashes ignored,
    /// `O`→`0`, `I`/`L`→`1`.
    ///
    /// # Errors
    /// [`Error::RecoveryCodeMalformed`] for a wrong length or character,
    /// [`Error::RecoveryCodeChecksum`] when the checksum group does not match (typo).
    pub fn parse(text: &str) -> Result<Self> {
        let mut values = Zeroizing::new(Vec::with_capacity(DATA_CHARS + CHECK_CHARS));
        for c in text.chars() {
            if c == ' ' || c == '-' {
                continue;
            }
            if values.len() == DATA_CHARS + CHECK_CHARS {
                return Err(Error::RecoveryCodeMalformed);
            }
            values.push(decode_char(c).ok_or(Error::RecoveryCodeMalformed)?);
        }
        if values.len() != DATA_CHARS + CHECK_CHARS {
            return Err(Error::RecoveryCodeMalformed);
        }
        let (data, check) = values.split_at(DATA_CHARS);
        let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
        // 8 characters carry 5 bytes.
        for (chunk, out) in data.chunks_exact(8).zip(bytes.chunks_exact_mut(5)) {
            let mut acc: u64 = 0;
            for v in chunk {
                acc = (acc << 5) | u64::from(*v);
            }
            out.copy_from_slice(&acc.to_be_bytes()[3..]);
        }
        let expected = checksum(&bytes);
        if check != expected.as_slice() {
            return Err(Error::RecoveryCodeChecksum);
        }
        Ok(Self(bytes))
    }

    /// The code as the user should write it down:
    /// nine dash-separated groups of four characters. Zeroed on drop.
    pub fn expose_text(&self) -> Zeroizing<String> {
        let mut values = Vec::with_capacity(DATA_CHARS + CHECK_CHARS);
        for chunk in self.0.chunks_exact(5) {
            let mut acc: u64 = 0;
            for b in chunk {
                acc = (acc << 8) | u64::from(*b);
            }
            for shift in (0..8).rev() {
                values.push(((acc >> (shift * 5)) & 0x1f) as u8);
            }
        }
        values.extend_from_slice(&checksum(&self.0));
        let mut text = Zeroizing::new(String::with_capacity(45));
        for (i, v) in values.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                text.push('-');
            }
            text.push(char::from(ALPHABET[usize::from(*v & 0x1f)]));
        }
        values.fill(0);
        text
    }

    fn derive(&self, label: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        hkdf_sha256(HKDF_SALT, self.0.as_ref(), &[label], out.as_mut())?;
        Ok(out)
    }

    /// The shared-store id of the recovery backup:
    /// base64url(HKDF(code, `recovery-id`)), 43 characters.
    ///
    /// # Errors
    /// None in practice (HKDF of 32 bytes); typed for uniformity.
    pub fn server_id(&self) -> Result<String> {
        Ok(URL_SAFE_NO_PAD.encode(self.derive(b"recovery-id")?.as_ref()))
    }

    /// Wraps a second copy of `secret` under this code: the id and JSON blob to
    /// `PUT` into the shared store.
    ///
    /// # Errors
    /// [`Error::Random`].
    pub fn make_backup(&self, secret: &StorageSecret) -> Result<Backup> {
        self.make_backup_with_iv(secret, random_array()?)
    }

    /// Deterministic [`make_backup`](Self::make_backup) for known-answer vectors only.
    ///
    /// # Errors
    /// As [`make_backup`](Self::make_backup).
    #[doc(hidden)]
    pub fn danger_make_backup_with_iv(
        &self,
        secret: &StorageSecret,
        iv: [u8; NONCE_LEN],
    ) -> Result<Backup> {
        self.make_backup_with_iv(secret, iv)
    }

    fn make_backup_with_iv(&self, secret: &StorageSecret, iv: [u8; NONCE_LEN]) -> Result<Backup> {
        let key = AeadKey::new(&*self.derive(b"recovery-wrap")?)?;
        let mut wrapped = secret.expose_bytes().to_vec();
        key.seal(iv, aad().as_bytes(), &mut wrapped)?;
        let json = Json {
            version: RECOVERY_BLOB_VERSION,
            kind: KIND.to_owned(),
            cipher: CIPHER.to_owned(),
            iv: B64.encode(iv),
            secrets: B64.encode(&wrapped),
        };
        let mut blob = serde_json::to_vec_pretty(&json).unwrap_or_default();
        blob.push(b'\n');
        Ok(Backup {
            id: self.server_id()?,
            blob,
        })
    }

    /// Recovers the storage secret from a recovery backup blob.
    ///
    /// # Errors
    /// [`Error::WrongRecoveryCode`] if this code does not open it (or it was altered);
    /// [`Error::UnknownVersion`], [`Error::UnsupportedCipher`], [`Error::Malformed`],
    /// [`Error::TooLarge`] for a bad blob.
    pub fn restore(&self, blob: &[u8]) -> Result<StorageSecret> {
        let (iv, mut wrapped) = parse_blob(blob)?;
        let key = AeadKey::new(&*self.derive(b"recovery-wrap")?)?;
        key.open(iv, aad().as_bytes(), &mut wrapped)
            .map_err(|_| Error::WrongRecoveryCode)?;
        let bytes: [u8; STORAGE_SECRET_LEN] = wrapped
            .as_slice()
            .try_into()
            .map_err(|_| Error::WrongRecoveryCode)?;
        wrapped.fill(0);
        Ok(StorageSecret::from_bytes(bytes))
    }
}

/// Parses a recovery blob into (iv, wrapped secret). Hidden hook for fuzzing.
#[doc(hidden)]
pub fn parse_blob(blob: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    if blob.len() > MAX_RECOVERY_BLOB_BYTES {
        return Err(Error::TooLarge { what: WHAT });
    }
    let malformed = || Error::Malformed { what: WHAT };
    let version: VersionOnly = serde_json::from_slice(blob).map_err(|_| malformed())?;
    if version.version != RECOVERY_BLOB_VERSION {
        return Err(Error::UnknownVersion {
            what: WHAT,
            version: version.version,
        });
    }
    let json: Json = serde_json::from_slice(blob).map_err(|_| malformed())?;
    if json.kind != KIND {
        return Err(malformed());
    }
    if json.cipher != CIPHER {
        return Err(Error::UnsupportedCipher);
    }
    let iv: [u8; NONCE_LEN] = decode_bounded(&json.iv, NONCE_LEN)?
        .try_into()
        .map_err(|_| malformed())?;
    let wrapped = decode_bounded(&json.secrets, STORAGE_SECRET_LEN + TAG_LEN)?;
    if wrapped.len() != STORAGE_SECRET_LEN + TAG_LEN {
        return Err(malformed());
    }
    Ok((iv, wrapped))
}

fn decode_bounded(text: &str, len: usize) -> Result<Vec<u8>> {
    if text.len() > len.div_ceil(3) * 4 {
        return Err(Error::Malformed { what: WHAT });
    }
    B64.decode(text)
        .map_err(|_| Error::Malformed { what: WHAT })
}

fn aad() -> String {
    format!("{KIND}/v{RECOVERY_BLOB_VERSION}/{CIPHER}")
}

fn checksum(bytes: &[u8; RECOVERY_CODE_BYTES]) -> [u8; CHECK_CHARS] {
    let digest = sha256(&[CHECKSUM_LABEL, bytes]);
    // First 20 bits of the digest, as four 5-bit values.
    let top =
        (u32::from(digest[0]) << 12) | (u32::from(digest[1]) << 4) | (u32::from(digest[2]) >> 4);
    [
        ((top >> 15) & 0x1f) as u8,
        ((top >> 10) & 0x1f) as u8,
        ((top >> 5) & 0x1f) as u8,
        (top & 0x1f) as u8,
    ]
}

fn decode_char(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    let pos = ALPHABET.iter().position(|a| char::from(*a) == c)?;
    u8::try_from(pos).ok()
}
