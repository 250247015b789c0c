//! Write permits of the blob store: at most `concurrent_blob_writes` uploads
//! write at once, and at most `per_user_blob_writes` of them belong to one
//! user, so a user's stalled uploads can never hold every permit.
//!
//! An upload asks for its permit only once the first body bytes have arrived
//! (see `put.rs`): a client that announces an upload and sends nothing holds
//! no permit at all.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ids::UserId;

/// Users' semaphores kept before idle ones are dropped from the map.
const MAX_IDLE_USERS: usize = 1024;

/// The permit pool: one global semaphore and one per user.
#[derive(Debug)]
pub(crate) struct WritePermits {
    global: Arc<Semaphore>,
    per_user: usize,
    users: Mutex<HashMap<UserId, Arc<Semaphore>>>,
}

/// A held write permit (the user's and a global one); dropping it frees both.
#[derive(Debug)]
pub(crate) struct WritePermit {
    _global: OwnedSemaphorePermit,
    _user: OwnedSemaphorePermit,
}

/// The per-user cap used when none is configured: a quarter of the total,
/// at least 1.
pub fn default_per_user_writes(total: usize) -> usize {
    (total / 4).max(1)
}

impl WritePermits {
    /// `total` permits (at least 1), at most `per_user` (at least 1, at most
    /// `total`) for one user.
    pub(crate) fn new(total: usize, per_user: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        WritePermits {
            global: Arc::new(Semaphore::new(total)),
            per_user: per_user.clamp(1, total),
            users: Mutex::new(HashMap::new()),
        }
    }

    fn user_semaphore(&self, user: &UserId) -> Arc<Semaphore> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if users.len() >= MAX_IDLE_USERS && !users.contains_key(user) {
            // Only the map holds an idle user's semaphore.
            users.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
        Arc::clone(
            users
                .entry(user.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_user))),
        )
    }

    /// Waits for one of `user`'s permits, then for a global one.
    ///
    /// # Errors
    /// An I/O error if the pool was closed (never, in practice).
    pub(crate) async fn acquire(&self, user: &UserId) -> io::Result<WritePermit> {
        let user_permit = self
            .user_semaphore(user)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let global = Arc::clone(&self.global)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        Ok(WritePermit {
            _global: global,
            _user: user_permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_a_quarter() {
        assert_eq!(default_per_user_writes(1), 1);
        assert_eq!(default_per_user_writes(3), 1);
        assert_eq!(default_per_user_writes(50), 12);
    }

    #[tokio::test]
    async fn one_user_cannot_take_every_permit() {
        let permits = WritePermits::new(3, 1);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let held = permits.acquire(&alice).await.unwrap();
        let second = futures_util::FutureExt::now_or_never(permits.acquire(&alice));
        assert!(second.is_none(), "alice's second write must wait");
        let _bob = permits.acquire(&bob).await.unwrap();
        drop(held);
        let _again = permits.acquire(&alice).await.unwrap();
    }
}
