//! Where the storage secret comes from: the local secrets file, else the server
//! backup, else a new secret whose backup is uploaded. Passphrase changes and
//! recovery codes keep the server copies in step.

use std::path::Path;

use secrecy::SecretString;
use soledad_crypto::{KdfParams, RecoveryCode, SecretsFile, StorageSecret};

use crate::error::Error;
use crate::transport::Transport;

/// A replica uid used only to ask the server where the account's store is.
const BOOTSTRAP_PROBE_REPLICA: &str = "bootstrap-probe";

/// Loads or creates the storage secret (see [`crate::Soledad::open`]).
pub(crate) async fn bootstrap(
    uuid: &str,
    passphrase: &SecretString,
    secrets_path: &Path,
    kdf: KdfParams,
    transport: Option<&Transport>,
    recovery_code: Option<&RecoveryCode>,
) -> Result<StorageSecret, Error> {
    if secrets_path.exists() {
        let path = secrets_path.to_owned();
        let passphrase = passphrase.clone();
        return blocking(move || SecretsFile::load(&path)?.unlock(&passphrase)).await;
    }
    if let Some(code) = recovery_code {
        let transport = transport.ok_or(Error::NoServer)?;
        return recover_with_code(uuid, code, passphrase, secrets_path, kdf, transport).await;
    }
    if let Some(transport) = transport {
        let id = backup_id(uuid, passphrase, kdf).await?;
        if let Some(found) = transport.shared_get(&id).await? {
            let blob = found.content.to_vec();
            let (uuid_c, passphrase_c) = (uuid.to_owned(), passphrase.clone());
            let secret = blocking(move || {
                soledad_crypto::restore_from_backup(&blob, &uuid_c, &passphrase_c)
            })
            .await?;
            save_secrets_file(&secret, passphrase, secrets_path, kdf).await?;
            return Ok(secret);
        }
    }
    if let Some(transport) = transport {
        // No backup under this passphrase. If the account already has documents on
        // the server, this is a wrong passphrase (or a forgotten one), not a new
        // account: making a new secret would fork the account into data nobody
        // else can read.
        if let Some(info) = transport.sync_info(BOOTSTRAP_PROBE_REPLICA).await?
            // Not the origin position: the server store has a history (positions
            // are opaque to the client, compared for equality only).
            && info.target_replica_generation != 0
        {
            return Err(Error::BackupNotFound);
        }
    }
    let secret = StorageSecret::generate()?;
    if let Some(transport) = transport {
        upload_backup(transport, uuid, &secret, passphrase, kdf).await?;
    }
    save_secrets_file(&secret, passphrase, secrets_path, kdf).await?;
    Ok(secret)
}

/// Re-wraps locally and moves the server backup to the new passphrase's id.
pub(crate) async fn change_passphrase(
    uuid: &str,
    secret: &StorageSecret,
    old: &SecretString,
    new: &SecretString,
    secrets_path: &Path,
    kdf: KdfParams,
    transport: Option<&Transport>,
) -> Result<(), Error> {
    // Check the old passphrase against the file first: a wrong one changes nothing.
    let path = secrets_path.to_owned();
    let (old_c, new_c) = (old.clone(), new.clone());
    let rewrapped =
        blocking(move || SecretsFile::load(&path)?.change_passphrase(&old_c, &new_c, kdf)).await?;
    if let Some(transport) = transport {
        let old_id = backup_id(uuid, old, kdf).await?;
        upload_backup(transport, uuid, secret, new, kdf).await?;
        if let Some(found) = transport.shared_get(&old_id).await? {
            transport.shared_delete(&old_id, &found.rev).await?;
        }
    }
    let path = secrets_path.to_owned();
    blocking(move || rewrapped.save(&path)).await?;
    Ok(())
}

/// Makes a recovery code and stores its backup on the server.
pub(crate) async fn create_recovery_code(
    secret: &StorageSecret,
    transport: &Transport,
) -> Result<RecoveryCode, Error> {
    let code = RecoveryCode::generate()?;
    let backup = code.make_backup(secret)?;
    let content = backup_json(&backup.blob)?;
    let existing = transport.shared_get(&backup.id).await?;
    transport
        .shared_put(
            &backup.id,
            &content,
            existing.as_ref().map(|d| d.rev.as_str()),
        )
        .await?;
    Ok(code)
}

/// Fetches the recovery backup for `code` and sets up `secrets_path` under a new
/// passphrase, replacing the passphrase backup on the server.
pub(crate) async fn recover_with_code(
    uuid: &str,
    code: &RecoveryCode,
    new_passphrase: &SecretString,
    secrets_path: &Path,
    kdf: KdfParams,
    transport: &Transport,
) -> Result<StorageSecret, Error> {
    let id = code.server_id()?;
    let found = transport
        .shared_get(&id)
        .await?
        .ok_or(Error::BackupNotFound)?;
    let blob = found.content.to_vec();
    let secret = code.restore(&blob)?;
    upload_backup(transport, uuid, &secret, new_passphrase, kdf).await?;
    save_secrets_file(&secret, new_passphrase, secrets_path, kdf).await?;
    Ok(secret)
}

async fn backup_id(uuid: &str, passphrase: &SecretString, kdf: KdfParams) -> Result<String, Error> {
    let (uuid, passphrase) = (uuid.to_owned(), passphrase.clone());
    blocking(move || soledad_crypto::backup_id(&uuid, &passphrase, kdf)).await
}

async fn upload_backup(
    transport: &Transport,
    uuid: &str,
    secret: &StorageSecret,
    passphrase: &SecretString,
    kdf: KdfParams,
) -> Result<(), Error> {
    let (uuid_c, passphrase_c, secret_c) = (uuid.to_owned(), passphrase.clone(), secret.clone());
    let backup =
        blocking(move || soledad_crypto::make_backup(&secret_c, &uuid_c, &passphrase_c, kdf))
            .await?;
    let content = backup_json(&backup.blob)?;
    let existing = transport.shared_get(&backup.id).await?;
    transport
        .shared_put(
            &backup.id,
            &content,
            existing.as_ref().map(|d| d.rev.as_str()),
        )
        .await
}

async fn save_secrets_file(
    secret: &StorageSecret,
    passphrase: &SecretString,
    path: &Path,
    kdf: KdfParams,
) -> Result<(), Error> {
    let (secret, passphrase, path) = (secret.clone(), passphrase.clone(), path.to_owned());
    blocking(move || SecretsFile::new(&secret, &passphrase, kdf)?.save(&path)).await
}

/// The shared store holds JSON documents; our backup blobs are JSON already.
fn backup_json(blob: &[u8]) -> Result<String, Error> {
    String::from_utf8(blob.to_vec()).map_err(|_| Error::BackupNotFound)
}

/// scrypt and file I/O run off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, soledad_crypto::Error> + Send + 'static,
) -> Result<T, Error> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::from)??)
}
