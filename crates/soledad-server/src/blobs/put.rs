//! Uploading a blob: stream to a temporary file, fsync, publish atomically.
//!
//! Order of a successful upload:
//! 1. claim the id (a second upload of it in flight gets `AlreadyExists`),
//!    check it is not stored, reserve the announced length, wait for the
//!    first body bytes, then for a write permit (one of the user's, then a
//!    global one: `permits.rs`), so a client that sends nothing holds none;
//! 2. stream chunks into `root/.tmp/<random>.part`, growing the reservation as
//!    bytes arrive (quota enforced mid-stream), never holding more than one
//!    chunk in memory;
//! 3. stamp the upload time, fsync the file;
//! 4. under the id's lock: write the flags sidecar (atomically), hard-link the
//!    temp file to its final name (fails if the name exists: never clobbers),
//!    remove a tombstone of an earlier delete, fsync the directories;
//! 5. commit the reservation: content length plus the per-entry overhead of
//!    each new file ([`ENTRY_OVERHEAD_BYTES`]), crediting a removed tombstone.
//!
//! Any error or a dropped future before step 4 drops the guards: the temp file
//! is removed, the reservation, permit and claim released. Step 4 runs on the
//! blocking pool and owns everything it needs, so a future dropped during it
//! still ends in a consistent state (published and charged, or nothing).

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::backend::ByteStream;
use super::blocking::run_blocking;
use super::error::BlobError;
use super::flags::Flag;
use super::fs::StoreInner;
use super::ids::{BlobId, Namespace, UserId};
use super::layout::{BlobPaths, blob_paths};
use super::quota::ENTRY_OVERHEAD_BYTES;
use super::sidecar::{encode_flags, sync_dir, write_atomic};
use super::temp::{TempGuard, temp_path};

/// Size of the write buffer of an upload.
const WRITE_BUFFER: usize = 256 * 1024;

/// What a new blob's files cost beyond its content: the content file's and the
/// flags file's per-entry overhead.
const NEW_BLOB_OVERHEAD: u64 = 2 * ENTRY_OVERHEAD_BYTES;

fn exists(path: &Path) -> Result<bool, BlobError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Creates the blob's directory and its missing parents; when any was
/// created, fsyncs the chain up to the root so the new entries are durable.
fn create_dirs(root: &Path, paths: &BlobPaths) -> Result<(), BlobError> {
    if paths.dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(&paths.dir)?;
    let mut dir = paths.dir.parent();
    while let Some(d) = dir {
        sync_dir(d)?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Streams `body` into a new blob. See [`BlobBackend::put`](super::backend::BlobBackend::put).
pub(crate) async fn put(
    inner: &Arc<StoreInner>,
    user: &UserId,
    ns: &Namespace,
    id: &BlobId,
    body: ByteStream,
    content_length: Option<u64>,
    initial_flags: &[Flag],
) -> Result<u64, BlobError> {
    let paths = blob_paths(&inner.root, user, ns, id);
    let claim = inner.claims.claim_upload(&paths.key)?;
    let content = paths.content.clone();
    if run_blocking(move || exists(&content)).await? {
        return Err(BlobError::AlreadyExists);
    }
    let mut reservation = inner
        .ledger
        .reserve(
            user,
            content_length
                .unwrap_or(0)
                .saturating_add(NEW_BLOB_OVERHEAD),
        )
        .await?;
    // No permit while the client has sent nothing (a stalled client is cut
    // by the server's body timeout, holding only its own reservation).
    let mut body = body.fuse();
    let first = body.next().await;
    let permit = inner.writes.acquire(user).await?;
    let mut body = futures_util::stream::iter(first).chain(body);

    let temp = TempGuard::new(temp_path(&inner.temp_dir)?);
    let file = tokio::fs::File::options()
        .write(true)
        .create_new(true)
        .open(temp.path())
        .await?;
    // Batches small network chunks into fewer blocking writes.
    let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut written: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                tracing::debug!(error = %err, "blob upload body failed");
                return Err(BlobError::BodyInterrupted);
            }
        };
        let len = u64::try_from(chunk.len()).map_err(|_| BlobError::BodyInterrupted)?;
        written = written.checked_add(len).ok_or(BlobError::BodyInterrupted)?;
        if content_length.is_some_and(|expected| written > expected) {
            return Err(BlobError::BodyInterrupted);
        }
        let needed = written.saturating_add(NEW_BLOB_OVERHEAD);
        if needed > reservation.bytes() {
            reservation.grow(needed - reservation.bytes())?;
        }
        file.write_all(&chunk).await?;
    }
    if content_length.is_some_and(|expected| written != expected) {
        return Err(BlobError::BodyInterrupted);
    }
    file.flush().await?;
    let file = file.into_inner().into_std().await;
    let flags = encode_flags(initial_flags);
    let uploaded_at = inner.clock.next();
    let inner = Arc::clone(inner);
    let user = user.clone();

    run_blocking(move || {
        // Owned here so a dropped caller cannot release them mid-publish.
        let _permit = permit;
        let _claim = claim;
        file.set_modified(uploaded_at)?;
        file.sync_all()?;
        drop(file);

        let _lock = inner.claims.lock(&paths.key);
        if exists(&paths.content)? {
            return Err(BlobError::AlreadyExists);
        }
        create_dirs(&inner.root, &paths)?;
        // A flags file left by a crashed upload is replaced, not added.
        let flags_existed = exists(&paths.flags)?;
        // Flags before content: a crash in between leaves a flags file with no
        // blob (ignored, and replaced by the next upload of this id), never a
        // blob without the flags it was uploaded with.
        // (The directory is synced once below, for both new entries.)
        write_atomic(&inner.temp_dir, &paths.flags, &flags, None, false)?;
        match std::fs::hard_link(temp.path(), &paths.content) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BlobError::AlreadyExists);
            }
            Err(err) => return Err(err.into()),
        }
        let tombstone_removed = match std::fs::remove_file(&paths.tombstone) {
            Ok(()) => true,
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => return Err(err.into()),
        };
        sync_dir(&paths.dir)?;
        // Exactly what the files cost (see `FsUsage`): content + its entry,
        // the flags entry if new; a removed tombstone is credited.
        let mut charge = written.saturating_add(ENTRY_OVERHEAD_BYTES);
        if !flags_existed {
            charge = charge.saturating_add(ENTRY_OVERHEAD_BYTES);
        }
        reservation.shrink_to(charge);
        reservation.commit();
        if tombstone_removed {
            inner.ledger.release(&user, ENTRY_OVERHEAD_BYTES);
        }
        drop(temp);
        Ok(written)
    })
    .await
}
