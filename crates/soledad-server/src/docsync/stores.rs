//! Opening per-user stores on demand, one worker thread per store while in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use soledad_store::{OpaqueDatabase, StoreWorker};

use crate::blobs::{UsageSource, UserId};
use crate::error::Error;
use crate::userdb::EmbeddedUserDocStores;

/// A user's store on its worker thread.
pub(crate) type UserStore = Arc<StoreWorker<Vec<u8>>>;

/// Opens each user's store at most once at a time: concurrent syncs of one user
/// (several devices) share one worker, so their batches are serialised and each
/// is atomic.
pub(crate) struct UserStores {
    embedded: EmbeddedUserDocStores,
    open: Mutex<HashMap<String, Weak<StoreWorker<Vec<u8>>>>>,
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
        if let Some(worker) = open.get(user.as_str()).and_then(Weak::upgrade) {
            return Ok(Some(worker));
        }
        let worker = Arc::new(
            StoreWorker::spawn(db, "soledad-user-store").map_err(|_| Error::StorageUnavailable)?,
        );
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(user.as_str().to_owned(), Arc::downgrade(&worker));
        Ok(Some(worker))
    }

    fn cached(&self, user: &UserId) -> Option<UserStore> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(user.as_str()).and_then(Weak::upgrade)
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
