//! The [`TokenStore`] contract: tokens verify only for their user, until
//! rotated, removed or expired; users are unique, valid ids and listed in
//! order.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use crate::auth::{IssuedToken, TokenStore, UserRecord};
use crate::error::Error;

/// Makes the token stores the cases run on.
pub trait Factory: Sync {
    /// A new, empty store (no user).
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn TokenStore>>;
}

/// Fewest characters of a token: 128 bits in base64 (the embedded store
/// issues 256).
const MIN_TOKEN_CHARS: usize = 22;

async fn add(store: &dyn TokenStore, uuid: &str) -> IssuedToken {
    store.add(uuid, None).await.unwrap()
}

async fn verifies(store: &dyn TokenStore, uuid: &str, token: &str) -> bool {
    store.verify(uuid, token).await.unwrap()
}

fn uuids(users: &[UserRecord]) -> Vec<&str> {
    users.iter().map(|user| user.uuid.as_str()).collect()
}

/// A token verifies for its user only, and only exactly.
pub async fn verify_accepts_only_the_current_token(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let store = store.as_ref();
    let alice = add(store, "alice").await;
    let bob = add(store, "bob").await;
    assert_ne!(alice.expose(), bob.expose(), "every token is new");
    assert!(alice.expose().len() >= MIN_TOKEN_CHARS, "too short a token");
    assert!(verifies(store, "alice", alice.expose()).await);
    assert!(verifies(store, "bob", bob.expose()).await);
    assert!(!verifies(store, "alice", bob.expose()).await);
    assert!(!verifies(store, "bob", alice.expose()).await);
    assert!(!verifies(store, "alice", "").await);
    assert!(!verifies(store, "alice", &format!("{}x", alice.expose())).await);
    let shorter = alice.expose().get(1..).unwrap_or_default();
    assert!(!verifies(store, "alice", shorter).await);
    assert!(!verifies(store, "carol", alice.expose()).await);
    // An id that is not a user id verifies nothing (and is no error).
    for bad in ["", "../alice", "alice/x", "é"] {
        assert!(!verifies(store, bad, alice.expose()).await, "{bad:?}");
    }
}

/// `add` refuses a known user (keeping their token) and an invalid id.
pub async fn add_refuses_known_and_invalid_users(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let store = store.as_ref();
    let first = add(store, "alice").await;
    let again = store.add("alice", None).await;
    assert!(matches!(again, Err(Error::UserExists)), "{again:?}");
    assert!(verifies(store, "alice", first.expose()).await);
    for bad in ["", "a/b", "..", "a b", &"u".repeat(65)] {
        let result = store.add(bad, None).await;
        assert!(
            matches!(result, Err(Error::InvalidUserId)),
            "{bad:?}: {result:?}"
        );
    }
    assert_eq!(uuids(&store.list().await.unwrap()), ["alice"]);
}

/// A token stops verifying at its expiry; `list` reports the expiry (to the
/// second); `rotate` sets a new one.
pub async fn expiry_is_enforced_and_listed(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let store = store.as_ref();
    let now = SystemTime::now();
    let past = now - Duration::from_secs(10);
    let future = now + Duration::from_secs(86_400);
    let old = store.add("old", Some(past)).await.unwrap();
    let fresh = store.add("fresh", Some(future)).await.unwrap();
    assert!(!verifies(store, "old", old.expose()).await, "expired token");
    assert!(verifies(store, "fresh", fresh.expose()).await);
    let users = store.list().await.unwrap();
    assert_eq!(uuids(&users), ["fresh", "old"]);
    let listed = |i: usize| users.get(i).and_then(|user| user.expires_at).unwrap();
    let close = |a: SystemTime, b: SystemTime| {
        a.duration_since(b)
            .or_else(|_| b.duration_since(a))
            .unwrap()
            < Duration::from_secs(2)
    };
    assert!(close(listed(0), future), "expiry listed to the second");
    assert!(close(listed(1), past));

    let renewed = store.rotate("old", None).await.unwrap();
    assert!(verifies(store, "old", renewed.expose()).await);
    let users = store.list().await.unwrap();
    assert_eq!(users.get(1).map(|user| user.expires_at), Some(None));
    let expired = store.rotate("fresh", Some(past)).await.unwrap();
    assert!(!verifies(store, "fresh", expired.expose()).await);
}

/// `rotate` replaces a user's token at once and touches nobody else.
pub async fn rotate_replaces_the_token(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let store = store.as_ref();
    let old = add(store, "alice").await;
    let bob = add(store, "bob").await;
    let new = store.rotate("alice", None).await.unwrap();
    assert_ne!(old.expose(), new.expose());
    assert!(
        !verifies(store, "alice", old.expose()).await,
        "old token dead"
    );
    assert!(verifies(store, "alice", new.expose()).await);
    assert!(verifies(store, "bob", bob.expose()).await);
    let unknown = store.rotate("carol", None).await;
    assert!(matches!(unknown, Err(Error::NotFound)), "{unknown:?}");
    let invalid = store.rotate("a/b", None).await;
    assert!(matches!(invalid, Err(Error::InvalidUserId)), "{invalid:?}");
    assert_eq!(uuids(&store.list().await.unwrap()), ["alice", "bob"]);
}

/// `remove` forgets a user: their token is refused, and they may be added
/// again with a new token.
pub async fn remove_forgets_the_user(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let store = store.as_ref();
    let alice = add(store, "alice").await;
    let bob = add(store, "bob").await;
    store.remove("alice").await.unwrap();
    assert!(!verifies(store, "alice", alice.expose()).await);
    assert!(verifies(store, "bob", bob.expose()).await);
    assert_eq!(uuids(&store.list().await.unwrap()), ["bob"]);
    let again = store.remove("alice").await;
    assert!(matches!(again, Err(Error::NotFound)), "{again:?}");
    let rotate = store.rotate("alice", None).await;
    assert!(matches!(rotate, Err(Error::NotFound)), "{rotate:?}");
    let invalid = store.remove("a/b").await;
    assert!(matches!(invalid, Err(Error::InvalidUserId)), "{invalid:?}");
    let back = add(store, "alice").await;
    assert!(verifies(store, "alice", back.expose()).await);
    assert!(!verifies(store, "alice", alice.expose()).await);
}

/// `list` returns every user, sorted by uuid.
pub async fn list_is_sorted_by_uuid(factory: &dyn Factory) {
    let store = factory.fresh().await;
    let store = store.as_ref();
    assert!(store.list().await.unwrap().is_empty());
    for uuid in ["carol", "alice", "Bob", "bob", "a-1"] {
        add(store, uuid).await;
    }
    let users = store.list().await.unwrap();
    assert_eq!(uuids(&users), ["Bob", "a-1", "alice", "bob", "carol"]);
    assert!(users.iter().all(|user| user.expires_at.is_none()));
}
