//! The [`QuotaCounters`] contract, through the [`QuotaLedger`] every write
//! path holds: writes in flight are reserved and only count as stored once
//! committed; nothing passes the limit and a refusal changes nothing; a
//! dropped reservation gives its bytes back; charges and releases adjust the
//! stored bytes (never below zero); users are isolated; concurrent
//! reservations of one instance never pass the limit together.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::blobs::{BlobError, QuotaCounters, QuotaLedger, UserId};

/// Makes the counters the cases run on.
pub trait Factory: Sync {
    /// New, empty counters (no user has stored anything, no usage source).
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn QuotaCounters>>;
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

async fn ledger(factory: &dyn Factory, limit_bytes: u64) -> QuotaLedger {
    QuotaLedger::with_counters(limit_bytes, factory.fresh().await)
}

async fn used(ledger: &QuotaLedger, user: &UserId) -> u64 {
    ledger.usage(user).await.unwrap().used_bytes
}

fn refused_at(result: Result<impl std::fmt::Debug, BlobError>) -> u64 {
    match result {
        Err(BlobError::QuotaExceeded {
            used_bytes,
            limit_bytes: _,
        }) => used_bytes,
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

/// A reservation is not usage until committed; then exactly its bytes are.
pub async fn reserved_bytes_count_once_committed(factory: &dyn Factory) {
    let ledger = ledger(factory, 1000).await;
    let alice = user("alice");
    let usage = ledger.usage(&alice).await.unwrap();
    assert_eq!((usage.used_bytes, usage.limit_bytes), (0, 1000));
    let mut reservation = ledger.reserve(&alice, 300).await.unwrap();
    assert_eq!(reservation.bytes(), 300);
    assert_eq!(used(&ledger, &alice).await, 0, "in flight is not stored");
    reservation.grow(100).unwrap();
    reservation.shrink_to(250);
    assert_eq!(reservation.bytes(), 250);
    reservation.commit();
    assert_eq!(used(&ledger, &alice).await, 250);
}

/// Reserved and stored bytes together never pass the limit; a refused
/// reservation or growth changes nothing; dropping a reservation frees it.
pub async fn the_limit_holds_and_refusals_change_nothing(factory: &dyn Factory) {
    let ledger = ledger(factory, 1000).await;
    let alice = user("alice");
    ledger.reserve(&alice, 400).await.unwrap().commit();
    let mut held = ledger.reserve(&alice, 500).await.unwrap();
    assert_eq!(refused_at(ledger.reserve(&alice, 101).await), 900);
    assert_eq!(refused_at(held.grow(101)), 900);
    assert_eq!(held.bytes(), 500, "a refused growth keeps the size");
    held.grow(100).unwrap();
    assert_eq!(refused_at(ledger.reserve(&alice, 1).await), 1000);
    drop(held);
    assert_eq!(
        used(&ledger, &alice).await,
        400,
        "a dropped write stored nothing"
    );
    ledger.reserve(&alice, 600).await.unwrap().commit();
    assert_eq!(used(&ledger, &alice).await, 1000);
    assert_eq!(refused_at(ledger.reserve(&alice, 1).await), 1000);
    // A zero-byte reservation always fits (it only makes the user loaded).
    ledger.reserve(&alice, 0).await.unwrap().commit();
    assert_eq!(used(&ledger, &alice).await, 1000);
}

/// Charges add stored bytes up to the limit; releases take them off, never
/// below zero.
pub async fn charge_and_release_adjust_the_stored_bytes(factory: &dyn Factory) {
    let ledger = ledger(factory, 1000).await;
    let alice = user("alice");
    ledger.ensure_loaded(&alice).await.unwrap();
    ledger.charge(&alice, 700).unwrap();
    assert_eq!(used(&ledger, &alice).await, 700);
    let held = ledger.reserve(&alice, 200).await.unwrap();
    assert_eq!(refused_at(ledger.charge(&alice, 101)), 900);
    assert_eq!(
        used(&ledger, &alice).await,
        700,
        "a refused charge adds nothing"
    );
    drop(held);
    ledger.charge(&alice, 300).unwrap();
    ledger.release(&alice, 250);
    assert_eq!(used(&ledger, &alice).await, 750);
    ledger.release(&alice, 10_000);
    assert_eq!(used(&ledger, &alice).await, 0, "never below zero");
}

/// One user's writes never count against another's quota.
pub async fn users_are_isolated(factory: &dyn Factory) {
    let ledger = ledger(factory, 1000).await;
    let (alice, bob) = (user("alice"), user("bob"));
    ledger.reserve(&alice, 1000).await.unwrap().commit();
    let _held = ledger.reserve(&bob, 1000).await.unwrap();
    assert_eq!(used(&ledger, &alice).await, 1000);
    assert_eq!(used(&ledger, &bob).await, 0);
    ledger.ensure_loaded(&bob).await.unwrap();
    ledger.release(&bob, 500);
    assert_eq!(used(&ledger, &alice).await, 1000);
}

/// Concurrent reservations of one user through one instance: exactly as many
/// pass as fit, and their commits sum to the limit.
pub async fn concurrent_reservations_never_pass_the_limit(factory: &dyn Factory) {
    let ledger = Arc::new(ledger(factory, 1000).await);
    let alice = user("alice");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (ledger, alice) = (Arc::clone(&ledger), alice.clone());
            tokio::spawn(async move { ledger.reserve(&alice, 100).await })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        if let Ok(reservation) = task.await.unwrap() {
            granted.push(reservation);
        }
    }
    assert_eq!(granted.len(), 10, "exactly the reservations that fit");
    for reservation in granted {
        reservation.commit();
    }
    assert_eq!(used(&ledger, &alice).await, 1000);
}
