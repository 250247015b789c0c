//! Opening per-user stores on demand, one worker thread per open store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use soledad_store::{OpaqueDatabase, StoreWorker};

use crate::blobs::{UsageSource, UserId};
use crate::error::Error;
use crate::userdb::EmbeddedUserDocStores;

/// A user's store on its worker thread.
pub(crate) type UserStore = Arc<StoreWorker<Vec<u8>>>;

/// Stores kept open at most; the least recently used one is closed beyond.
///
/// Keeping a store open matters: closing the last connection checkpoints the WAL
/// into the database file, which measured ~80 ms after a 10 MB sync, and the next
/// request of that user would pay a reopen too.
const MAX_OPEN_STORES: usize = 256;

/// Opens each user's store at most once at a time: concurrent syncs of one user
/// (several devices) share one worker, so their batches are serialised and each
/// is atomic.
pub(crate) struct UserStores {
    embedded: EmbeddedUserDocStores,
    open: Mutex<HashMap<String, (UserStore, Instant)>>,
}

impl UserStores {
    pub(crate) fn new(embedded: EmbeddedUserDocStores) -> Self {
        UserStores {
            embedded,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The store of `user`; created when `ensure`, else `None` if it does not exist.
    pub(crate) async fn get(
        &self,
        user: &UserId,
        ensure: bool,
    ) -> Result<Option<UserStore>, Error> {
        if let Some(worker) = self.cached(user) {
            return Ok(Some(worker));
        }
        let embedded = self.embedded.clone();
        let owned_user = user.clone();
        let opened: Option<OpaqueDatabase> = tokio::task::spawn_blocking(move || {
            if !ensure && !embedded.path_of(&owned_user).is_file() {
                return Ok(None);
            }
            embedded.open_blocking(&owned_user).map(Some)
        })
        .await
        .map_err(|_| Error::StorageUnavailable)??;
        let Some(db) = opened else {
            return Ok(None);
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        // Another request may have opened it meanwhile: use theirs, drop ours.
        if let Some((worker, used)) = open.get_mut(user.as_str()) {
            *used = Instant::now();
            return Ok(Some(worker.clone()));
        }
        let worker = Arc::new(
            StoreWorker::spawn(db, "soledad-user-store").map_err(|_| Error::StorageUnavailable)?,
        );
        if open.len() >= MAX_OPEN_STORES {
            // Requests still holding the evicted store keep it alive until they end.
            let oldest = open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                open.remove(&oldest);
            }
        }
        open.insert(user.as_str().to_owned(), (worker.clone(), Instant::now()));
        Ok(Some(worker))
    }

    fn cached(&self, user: &UserId) -> Option<UserStore> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get_mut(user.as_str()).map(|(worker, used)| {
            *used = Instant::now();
            worker.clone()
        })
    }
}

/// Charges the document stores' size to the user's quota after a restart.
pub(crate) struct DocStoreUsage(pub(crate) EmbeddedUserDocStores);

impl UsageSource for DocStoreUsage {
    fn measure(&self, user: &UserId) -> std::io::Result<u64> {
        let path = self.0.path_of(user);
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            match std::fs::metadata(&file) {
                Ok(meta) => total += meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}
