//! The secrets file (`soledad.json`): the storage secret wrapped by a key derived
//! from the passphrase with scrypt, as versioned JSON.
//!
//! ```json
//! {
//!   "version": 3,
//!   "kdf": "scrypt",
//!   "kdf_params": { "log_n": 17, "r": 8, "p": 1 },
//!   "kdf_salt": "<base64, 32 bytes>",
//!   "kdf_length": 32,
//!   "cipher": "aes-256-gcm",
//!   "iv": "<base64, 12 bytes>",
//!   "secrets": "<base64, 64-byte secret ‖ 16-byte tag>"
//! }
//! ```
//! The AAD binds every header field, so a file whose parameters were edited fails
//! like a wrong passphrase. See `docs/crypto.md`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kdf::KdfParams;
use crate::keys::{STORAGE_SECRET_LEN, StorageSecret};
use crate::primitives::{AeadKey, KEY_LEN, NONCE_LEN, TAG_LEN, random_array};

/// The secrets-file format version written by this build.
pub const SECRETS_FILE_VERSION: u64 = 3;
/// Length of the random scrypt salt, in bytes.
pub const KDF_SALT_LEN: usize = 32;
/// Largest secrets file accepted by the parser.
pub const MAX_SECRETS_FILE_BYTES: usize = 16 * 1024;

const WHAT: &str = "secrets file";
const KDF_SCRYPT: &str = "scrypt";
const CIPHER_AES_256_GCM: &str = "aes-256-gcm";

/// On-disk shape, parsed strictly.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Json {
    version: u64,
    kdf: String,
    kdf_params: KdfParams,
    kdf_salt: String,
    kdf_length: usize,
    cipher: String,
    iv: String,
    secrets: String,
}

/// Just enough to read the version before committing to a layout.
#[derive(Deserialize)]
struct VersionOnly {
    version: u64,
}

/// A parsed, validated secrets file. Holds only ciphertext; [`unlock`](Self::unlock)
/// it with the passphrase to get the [`StorageSecret`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsFile {
    params: KdfParams,
    salt: [u8; KDF_SALT_LEN],
    iv: [u8; NONCE_LEN],
    wrapped: Vec<u8>,
}

impl SecretsFile {
    /// Wraps `secret` under `passphrase` with a fresh random salt and IV.
    ///
    /// # Errors
    /// [`Error::KdfParamsRejected`] for invalid parameters, [`Error::Random`].
    pub fn new(
        secret: &StorageSecret,
        passphrase: &SecretString,
        params: KdfParams,
    ) -> Result<Self> {
        Self::new_in_context(secret, passphrase, params, b"")
    }

    pub(crate) fn new_in_context(
        secret: &StorageSecret,
        passphrase: &SecretString,
        params: KdfParams,
        context: &[u8],
    ) -> Result<Self> {
        let salt = random_array()?;
        let iv = random_array()?;
        Self::wrap(secret, passphrase, params, salt, iv, context)
    }

    /// Deterministic [`new`](Self::new) with a caller-chosen salt and IV, for
    /// known-answer test vectors only. Reusing an IV under the same passphrase and
    /// salt breaks the encryption: never call this in production.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    #[doc(hidden)]
    pub fn danger_new_with_salt_and_iv(
        secret: &StorageSecret,
        passphrase: &SecretString,
        params: KdfParams,
        salt: [u8; KDF_SALT_LEN],
        iv: [u8; NONCE_LEN],
    ) -> Result<Self> {
        Self::wrap(secret, passphrase, params, salt, iv, b"")
    }

    pub(crate) fn wrap(
        secret: &StorageSecret,
        passphrase: &SecretString,
        params: KdfParams,
        salt: [u8; KDF_SALT_LEN],
        iv: [u8; NONCE_LEN],
        context: &[u8],
    ) -> Result<Self> {
        let key = wrapping_key(passphrase, &params, &salt)?;
        let mut wrapped = secret.expose_bytes().to_vec();
        key.seal(iv, &aad(&params, &salt, context), &mut wrapped)?;
        Ok(Self {
            params,
            salt,
            iv,
            wrapped,
        })
    }

    /// Recovers the storage secret.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] if the passphrase is wrong or the file was altered;
    /// [`Error::KdfParamsRejected`] if its parameters exceed the caps.
    pub fn unlock(&self, passphrase: &SecretString) -> Result<StorageSecret> {
        self.unlock_in_context(passphrase, b"")
    }

    pub(crate) fn unlock_in_context(
        &self,
        passphrase: &SecretString,
        context: &[u8],
    ) -> Result<StorageSecret> {
        let key = wrapping_key(passphrase, &self.params, &self.salt)?;
        let mut buf = Zeroizing::new(self.wrapped.clone());
        key.open(self.iv, &aad(&self.params, &self.salt, context), &mut buf)
            .map_err(|_| Error::WrongPassphrase)?;
        let bytes: [u8; STORAGE_SECRET_LEN] = buf
            .as_slice()
            .try_into()
            .map_err(|_| Error::WrongPassphrase)?;
        Ok(StorageSecret::from_bytes(bytes))
    }

    /// Re-wraps the same storage secret under `new` with a fresh salt and IV (and
    /// possibly new parameters). Data keys do not change, so nothing is re-encrypted.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] if `old` does not unlock this file, and as
    /// [`new`](Self::new).
    pub fn change_passphrase(
        &self,
        old: &SecretString,
        new: &SecretString,
        params: KdfParams,
    ) -> Result<Self> {
        let secret = self.unlock(old)?;
        Self::new(&secret, new, params)
    }

    /// The scrypt parameters this file was made with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Parses and validates a secrets file (JSON bytes).
    ///
    /// # Errors
    /// [`Error::TooLarge`] over [`MAX_SECRETS_FILE_BYTES`]; [`Error::UnknownVersion`];
    /// [`Error::UnsupportedKdf`]; [`Error::UnsupportedCipher`];
    /// [`Error::KdfParamsRejected`]; [`Error::Malformed`] for anything else.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_SECRETS_FILE_BYTES {
            return Err(Error::TooLarge { what: WHAT });
        }
        let malformed = || Error::Malformed { what: WHAT };
        let version: VersionOnly = serde_json::from_slice(bytes).map_err(|_| malformed())?;
        if version.version != SECRETS_FILE_VERSION {
            return Err(Error::UnknownVersion {
                what: WHAT,
                version: version.version,
            });
        }
        let json: Json = serde_json::from_slice(bytes).map_err(|_| malformed())?;
        if json.kdf != KDF_SCRYPT {
            return Err(Error::UnsupportedKdf);
        }
        if json.cipher != CIPHER_AES_256_GCM {
            return Err(Error::UnsupportedCipher);
        }
        if json.kdf_length != KEY_LEN {
            return Err(malformed());
        }
        json.kdf_params.validate()?;
        let salt = decode_fixed::<KDF_SALT_LEN>(&json.kdf_salt).ok_or_else(malformed)?;
        let iv = decode_fixed::<NONCE_LEN>(&json.iv).ok_or_else(malformed)?;
        let wrapped = decode_fixed::<{ STORAGE_SECRET_LEN + TAG_LEN }>(&json.secrets)
            .ok_or_else(malformed)?
            .to_vec();
        Ok(Self {
            params: json.kdf_params,
            salt,
            iv,
            wrapped,
        })
    }

    /// Serialises as pretty JSON (the `soledad.json` content).
    pub fn to_json(&self) -> Vec<u8> {
        let json = Json {
            version: SECRETS_FILE_VERSION,
            kdf: KDF_SCRYPT.to_owned(),
            kdf_params: self.params,
            kdf_salt: B64.encode(self.salt),
            kdf_length: KEY_LEN,
            cipher: CIPHER_AES_256_GCM.to_owned(),
            iv: B64.encode(self.iv),
            secrets: B64.encode(&self.wrapped),
        };
        // Serialising a struct of strings and integers cannot fail.
        let mut out = serde_json::to_vec_pretty(&json).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads and parses a secrets file.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, otherwise as [`from_json`](Self::from_json).
    pub fn load(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::Io)?;
        let mut bytes = Vec::new();
        // Read one byte past the cap so an oversized file is reported, not truncated.
        file.take(MAX_SECRETS_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::Io)?;
        Self::from_json(&bytes)
    }

    /// Writes the file atomically: a temporary file in the same directory (mode 0600
    /// on Unix), fsync, rename over `path`, fsync of the directory. A crash leaves
    /// either the old or the new file, never a mix.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        atomic_write(path, &self.to_json()).map_err(Error::Io)
    }
}

fn wrapping_key(
    passphrase: &SecretString,
    params: &KdfParams,
    salt: &[u8; KDF_SALT_LEN],
) -> Result<AeadKey> {
    let key = params.derive::<KEY_LEN>(passphrase.expose_secret().as_bytes(), salt)?;
    AeadKey::new(&key)
}

/// AAD: every header field, so editing any of them fails authentication.
fn aad(params: &KdfParams, salt: &[u8; KDF_SALT_LEN], context: &[u8]) -> Vec<u8> {
    let mut aad = format!(
        "soledad-secrets/v{SECRETS_FILE_VERSION}/{KDF_SCRYPT}/{}/{}/{}/{KEY_LEN}/{CIPHER_AES_256_GCM}/",
        params.log_n, params.r, params.p
    )
    .into_bytes();
    aad.extend_from_slice(salt);
    aad.extend_from_slice(context);
    aad
}

fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Bound the work before decoding (base64 of N bytes is at most 4·⌈N/3⌉ chars).
    if text.len() > N.div_ceil(3) * 4 {
        return None;
    }
    B64.decode(text).ok()?.try_into().ok()
}

fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let suffix: [u8; 8] = random_array().map_err(std::io::Error::other)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", u64::from_le_bytes(suffix)));
    let tmp = dir.join(tmp_name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
