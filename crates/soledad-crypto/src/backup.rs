//! Passphrase backups of the storage secret in the server's shared store.
//!
//! The backup blob is a secrets file (same JSON as `soledad.json`, fresh salt and IV)
//! whose AAD also binds the user's uuid, so the server cannot hand one user another
//! user's backup. It is stored under an id derived from (uuid, passphrase) with the
//! same slow scrypt, so guessing the passphrase from the id costs as much as guessing
//! it from the backup itself.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::Result;
use crate::kdf::KdfParams;
use crate::keys::StorageSecret;
use crate::secrets_file::SecretsFile;

/// Prefix of the scrypt salt of the backup id (the uuid follows).
pub const BACKUP_ID_SALT_PREFIX: &[u8] = b"soledad/v1/backup-id:";
/// Prefix of the AAD context of the backup blob (the uuid follows).
const BACKUP_CONTEXT_PREFIX: &[u8] = b"backup:";

/// What the client `PUT`s into the server's shared store: `blob` under `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The id in the shared store: 43 base64url characters (no padding).
    pub id: String,
    /// The wrapped secret (JSON bytes); safe to hand to the server.
    pub blob: Vec<u8>,
}

/// The shared-store id of `uuid`'s passphrase backup:
/// base64url(scrypt(passphrase, salt = [`BACKUP_ID_SALT_PREFIX`] ‖ uuid, 32 bytes)).
///
/// `params` must be the same on every device of the account: pass
/// [`KdfParams::interactive`] in production (a new device has nothing else to go by).
///
/// # Errors
/// [`Error::KdfParamsRejected`](crate::Error::KdfParamsRejected).
pub fn backup_id(uuid: &str, passphrase: &SecretString, params: KdfParams) -> Result<String> {
    let mut salt = BACKUP_ID_SALT_PREFIX.to_vec();
    salt.extend_from_slice(uuid.as_bytes());
    let raw = params.derive::<32>(passphrase.expose_secret().as_bytes(), &salt)?;
    Ok(URL_SAFE_NO_PAD.encode(raw.as_ref()))
}

/// Makes the passphrase backup of `secret` for `uuid`: its id and blob.
/// Costs two scrypt runs (id, wrapping key).
///
/// # Errors
/// [`Error::KdfParamsRejected`](crate::Error::KdfParamsRejected),
/// [`Error::Random`](crate::Error::Random).
pub fn make_backup(
    secret: &StorageSecret,
    uuid: &str,
    passphrase: &SecretString,
    params: KdfParams,
) -> Result<Backup> {
    let id = backup_id(uuid, passphrase, params)?;
    let file = SecretsFile::new_in_context(secret, passphrase, params, &context(uuid))?;
    Ok(Backup {
        id,
        blob: file.to_json(),
    })
}

/// Recovers the storage secret from a backup blob fetched from the shared store.
///
/// # Errors
/// [`Error::WrongPassphrase`](crate::Error::WrongPassphrase) if the passphrase or uuid
/// is wrong or the blob was altered; parse errors as [`SecretsFile::from_json`].
pub fn restore_from_backup(
    blob: &[u8],
    uuid: &str,
    passphrase: &SecretString,
) -> Result<StorageSecret> {
    SecretsFile::from_json(blob)?.unlock_in_context(passphrase, &context(uuid))
}

fn context(uuid: &str) -> Vec<u8> {
    let mut ctx = BACKUP_CONTEXT_PREFIX.to_vec();
    ctx.extend_from_slice(uuid.as_bytes());
    ctx
}
