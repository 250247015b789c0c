//! Caps on waiting change requests: per user (`live_waits_per_user`, 429
//! beyond) and for the whole server (`max_live_waits`, 503 beyond), so a
//! flood of waits from one account cannot hold every slot, and all accounts
//! together cannot hold unbounded memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::blobs::UserId;
use crate::error::Error;

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per_user: HashMap<UserId, usize>,
}

/// Counts the change waits in flight.
#[derive(Debug)]
pub(crate) struct WaitSlots {
    per_user: usize,
    global: usize,
    held: Arc<Mutex<Held>>,
}

/// One wait in flight; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct WaitSlot {
    user: UserId,
    held: Arc<Mutex<Held>>,
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    // Every update is a counter and a map operation: consistent after a panic.
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WaitSlots {
    /// At most `per_user` waits of one user and `global` in all (each at least 1).
    pub(crate) fn new(per_user: usize, global: usize) -> Self {
        WaitSlots {
            per_user: per_user.max(1),
            global: global.max(1),
            held: Arc::new(Mutex::new(Held::default())),
        }
    }

    /// Takes a slot for a wait of `user`, or refuses at once.
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] when `user` holds `per_user` waits already;
    /// [`Error::Overloaded`] when the server holds `global`.
    pub(crate) fn try_take(&self, user: &UserId) -> Result<WaitSlot, Error> {
        let mut held = lock(&self.held);
        let mine = held.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(Error::TooManyRequests);
        }
        if held.total >= self.global {
            return Err(Error::Overloaded);
        }
        held.total += 1;
        held.per_user.insert(user.clone(), mine + 1);
        Ok(WaitSlot {
            user: user.clone(),
            held: Arc::clone(&self.held),
        })
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        held.total = held.total.saturating_sub(1);
        if let Some(mine) = held.per_user.get_mut(&self.user) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                held.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn per_user_then_global_caps_and_slots_come_back() {
        let slots = WaitSlots::new(2, 3);
        let a1 = slots.try_take(&user("a")).unwrap();
        let _a2 = slots.try_take(&user("a")).unwrap();
        assert!(matches!(
            slots.try_take(&user("a")),
            Err(Error::TooManyRequests)
        ));
        let _b1 = slots.try_take(&user("b")).unwrap();
        assert!(matches!(slots.try_take(&user("c")), Err(Error::Overloaded)));
        drop(a1);
        let _c1 = slots.try_take(&user("c")).unwrap();
        assert_eq!(lock(&slots.held).total, 3);
    }
}
