//! In-process coordination of writers: one upload per blob id at a time, and
//! short metadata operations on one id serialised.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::error::BlobError;

/// Number of lock stripes for metadata operations.
const STRIPES: usize = 64;

/// Upload claims and striped locks of one store.
#[derive(Debug)]
pub(crate) struct Claims {
    uploading: Mutex<HashSet<String>>,
    stripes: [Mutex<()>; STRIPES],
}

impl Claims {
    /// No claim held.
    pub(crate) fn new() -> Self {
        Self {
            uploading: Mutex::new(HashSet::new()),
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    /// Claims the right to upload blob `key`.
    ///
    /// # Errors
    /// [`BlobError::AlreadyExists`] while another upload of `key` is in flight.
    pub(crate) fn claim_upload(self: &Arc<Self>, key: &str) -> Result<UploadClaim, BlobError> {
        let mut uploading = self
            .uploading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !uploading.insert(key.to_owned()) {
            return Err(BlobError::AlreadyExists);
        }
        Ok(UploadClaim {
            claims: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    /// Locks blob `key` for a short metadata operation (publish, delete,
    /// flags). Blocking: call it on the blocking pool.
    pub(crate) fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        // `% STRIPES` keeps the index inside the array.
        let index = (hasher.finish() % STRIPES as u64) as usize;
        // The guarded value is `()`: a panic elsewhere leaves nothing inconsistent.
        self.stripes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right to upload one blob id; released on drop.
#[derive(Debug)]
pub(crate) struct UploadClaim {
    claims: Arc<Claims>,
    key: String,
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        let mut uploading = self
            .claims
            .uploading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        uploading.remove(&self.key);
    }
}
