//! Per-user limits on the users API: concurrent sync exchanges
//! ([`UserSlots`]) and misses on the shared store ([`MissLimiter`]).
//!
//! Both are in-memory and per process; their maps only keep users with
//! something in flight or a bucket not yet refilled, so memory follows active
//! users, not accounts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::blobs::UserId;
use crate::error::Error;

/// Caps how many of one thing (a sync exchange) each user has in flight.
#[derive(Debug)]
pub(crate) struct UserSlots {
    max_per_user: usize,
    in_use: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One slot held; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct Slot {
    user: UserId,
    in_use: Arc<Mutex<HashMap<UserId, usize>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single map operation: consistent even after a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl UserSlots {
    /// Allows `max_per_user` (at least 1) at a time per user.
    pub(crate) fn new(max_per_user: usize) -> Self {
        UserSlots {
            max_per_user: max_per_user.max(1),
            in_use: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a slot of `user`, or refuses at once.
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] when `user` holds every slot already.
    pub(crate) fn try_take(&self, user: &UserId) -> Result<Slot, Error> {
        let mut in_use = lock(&self.in_use);
        let held = in_use.entry(user.clone()).or_insert(0);
        if *held >= self.max_per_user {
            return Err(Error::TooManyRequests);
        }
        *held += 1;
        Ok(Slot {
            user: user.clone(),
            in_use: Arc::clone(&self.in_use),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_use = lock(&self.in_use);
        if let Some(held) = in_use.get_mut(&self.user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                in_use.remove(&self.user);
            }
        }
    }
}

/// A token bucket of misses per user: `per_minute` misses, refilled evenly
/// over a minute. While a user's bucket is empty every lookup of theirs is
/// refused (hit or miss alike, so the refusal says nothing).
#[derive(Debug)]
pub(crate) struct MissLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones are dropped from the map.
const MAX_BUCKETS: usize = 4096;

impl MissLimiter {
    /// Allows `per_minute` misses per user and minute; 0 means no limit.
    pub(crate) fn new(per_minute: u32) -> Self {
        MissLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.at);
        let rate = self.capacity() / Duration::from_secs(60).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed.as_secs_f64() * rate).min(self.capacity()),
            at: now,
        }
    }

    /// Whether `user` may look something up now.
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] while `user`'s bucket is empty.
    pub(crate) fn check(&self, user: &UserId) -> Result<(), Error> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let buckets = lock(&self.buckets);
        match buckets.get(user) {
            Some(bucket) if self.refilled(*bucket, now).tokens < 1.0 => Err(Error::TooManyRequests),
            _ => Ok(()),
        }
    }

    /// Records a miss of `user` (a lookup that found nothing).
    pub(crate) fn record_miss(&self, user: &UserId) {
        if self.per_minute == 0 {
            return;
        }
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(user) {
            let capacity = self.capacity();
            buckets.retain(|_, b| self.refilled(*b, now).tokens < capacity);
        }
        let fresh = Bucket {
            tokens: self.capacity(),
            at: now,
        };
        let bucket = buckets.entry(user.clone()).or_insert(fresh);
        let mut refilled = self.refilled(*bucket, now);
        refilled.tokens = (refilled.tokens - 1.0).max(0.0);
        *bucket = refilled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn slots_are_per_user_and_come_back() {
        let slots = UserSlots::new(2);
        let a1 = slots.try_take(&user("a")).unwrap();
        let _a2 = slots.try_take(&user("a")).unwrap();
        assert!(matches!(
            slots.try_take(&user("a")),
            Err(Error::TooManyRequests)
        ));
        let _b = slots.try_take(&user("b")).unwrap();
        drop(a1);
        let _a3 = slots.try_take(&user("a")).unwrap();
    }

    #[test]
    fn misses_empty_the_bucket_of_that_user_only() {
        let limiter = MissLimiter::new(3);
        for _ in 0..3 {
            limiter.check(&user("a")).unwrap();
            limiter.record_miss(&user("a"));
        }
        assert!(matches!(
            limiter.check(&user("a")),
            Err(Error::TooManyRequests)
        ));
        limiter.check(&user("b")).unwrap();
        let unlimited = MissLimiter::new(0);
        for _ in 0..100 {
            unlimited.record_miss(&user("a"));
        }
        unlimited.check(&user("a")).unwrap();
    }
}
