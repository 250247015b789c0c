//! Where a user's published incoming key lives, for every [`IncomingBox`]
//! backend: one blob (`MX-keys/incoming-public-key`) in the user's blob
//! store, so it follows the blobs wherever they are kept.
//!
//! [`IncomingBox`]: super::IncomingBox

use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{IncomingError, MAX_PUBLIC_KEY_LEN, check_key};
use crate::blobs::{BlobBackend, BlobError, BlobId, ByteStream, Namespace, UserId};

/// Namespace of the published incoming keys (one blob per user).
const KEYS_NAMESPACE: &str = "MX-keys";
/// Blob id of a user's incoming public key.
const KEY_BLOB_ID: &str = "incoming-public-key";

fn key_blob() -> Result<(Namespace, BlobId), IncomingError> {
    Ok((
        Namespace::parse(KEYS_NAMESPACE)?,
        BlobId::parse(KEY_BLOB_ID)?,
    ))
}

/// Replaces the user's key with `key` (already checked). Blobs are immutable,
/// so this deletes, then writes: the caller serialises rotations of one user
/// (a lock, a lease) so two of them do not mix.
pub(crate) async fn replace(
    blobs: &dyn BlobBackend,
    user: &UserId,
    key: &str,
) -> Result<(), IncomingError> {
    let (ns, id) = key_blob()?;
    match blobs.delete(user, &ns, &id).await {
        Ok(()) | Err(BlobError::NotFound) => {}
        Err(err) => return Err(err.into()),
    }
    let bytes = Bytes::from(key.to_owned().into_bytes());
    let len = u64::try_from(bytes.len()).ok();
    let body: ByteStream = Box::pin(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes)
    }));
    blobs.put(user, &ns, &id, body, len, &[]).await?;
    Ok(())
}

/// Reads the user's key, refusing anything over [`MAX_PUBLIC_KEY_LEN`] or not
/// a valid key (the blob store is not trusted to hold what was written).
pub(crate) async fn read(blobs: &dyn BlobBackend, user: &UserId) -> Result<String, IncomingError> {
    let (ns, id) = key_blob()?;
    let mut read = blobs.get(user, &ns, &id, None).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = read.body.next().await {
        let chunk = chunk.map_err(BlobError::Io)?;
        if bytes.len().saturating_add(chunk.len()) > MAX_PUBLIC_KEY_LEN {
            return Err(IncomingError::InvalidKey);
        }
        bytes.extend_from_slice(&chunk);
    }
    let key = String::from_utf8(bytes).map_err(|_| IncomingError::InvalidKey)?;
    check_key(&key)?;
    Ok(key)
}
