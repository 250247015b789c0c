//! The [`IncomingBox`] contract: atomic claims that expire, outcomes that need
//! the current claim, failed versions, ordered and paged listings, keys; and
//! claims and failed versions that survive a restart.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::blobs::{BlobBackend, BlobError, BlobId, ByteStream, Flag, Namespace, UserId};
use crate::incoming::{IncomingBox, IncomingError, IncomingQuery, MessageState, Outcome};

/// Makes the incoming boxes the cases run on.
pub trait Factory: Sync {
    /// A new, empty incoming box whose claims hold for `threshold`, with the
    /// blob backend it stores messages in (the cases deliver through it).
    fn fresh(
        &self,
        threshold: Duration,
    ) -> BoxFuture<'_, (Arc<dyn IncomingBox>, Arc<dyn BlobBackend>)>;

    /// The box `fresh` made last, as a restarted server opens it again: a new
    /// instance over the same blobs and the same claim storage (the old
    /// instance is dropped first).
    fn reopen(&self, threshold: Duration) -> BoxFuture<'_, Arc<dyn IncomingBox>>;
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn id(s: &str) -> BlobId {
    BlobId::parse(s).unwrap()
}

async fn deliver(blobs: &dyn BlobBackend, owner: &str, message: &str, size: usize) {
    let body: ByteStream = Box::pin(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(vec![b's'; size]))
    }));
    blobs
        .put(
            &user(owner),
            &Namespace::incoming(),
            &id(message),
            body,
            u64::try_from(size).ok(),
            &[Flag::Pending],
        )
        .await
        .unwrap();
    // Distinct upload dates, so the order is by delivery.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Of concurrent claimers exactly one wins; the message is then PROCESSING.
pub async fn concurrent_claims_exactly_one_wins(factory: &dyn Factory) {
    let (inbox, blobs) = factory.fresh(Duration::from_secs(60)).await;
    deliver(blobs.as_ref(), "alice", "m1", 10).await;
    let alice = user("alice");
    let m1 = id("m1");
    let claims = futures_util::future::join_all((0..8).map(|_| inbox.claim(&alice, &m1, 1))).await;
    let won = claims.iter().filter(|c| c.is_ok()).count();
    assert_eq!(won, 1, "exactly one claim wins");
    assert!(
        claims
            .iter()
            .all(|c| c.is_ok() || matches!(c, Err(IncomingError::Claimed)))
    );
    let flags = blobs
        .get_flags(&alice, &Namespace::incoming(), &m1)
        .await
        .unwrap();
    assert_eq!(flags, [Flag::Processing]);
    // Another user has no such message.
    assert!(matches!(
        inbox.claim(&user("bob"), &m1, 1).await,
        Err(IncomingError::Blob(BlobError::NotFound))
    ));
}

/// An expired claim lets another claimer in; the old claim can no longer
/// finish the message.
pub async fn an_expired_claim_is_taken_over(factory: &dyn Factory) {
    let (inbox, blobs) = factory.fresh(Duration::from_millis(200)).await;
    deliver(blobs.as_ref(), "alice", "m1", 10).await;
    let (alice, m1) = (user("alice"), id("m1"));
    let first = inbox.claim(&alice, &m1, 1).await.unwrap();
    assert!(matches!(
        inbox.claim(&alice, &m1, 1).await,
        Err(IncomingError::Claimed)
    ));
    // Poll until the claim expires (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        match inbox.claim(&alice, &m1, 1).await {
            Ok(claim) => break claim,
            Err(IncomingError::Claimed) => {
                assert!(std::time::Instant::now() < deadline, "claim never expired");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    };
    assert!(matches!(
        inbox
            .finish(&alice, &m1, &first.claim, Outcome::Processed)
            .await,
        Err(IncomingError::Claimed)
    ));
    inbox
        .finish(&alice, &m1, &second.claim, Outcome::Processed)
        .await
        .unwrap();
    assert!(matches!(
        blobs.get_flags(&alice, &Namespace::incoming(), &m1).await,
        Err(BlobError::NotFound)
    ));
}

/// FAILED records the version: only a newer version claims it again.
pub async fn failed_is_retried_only_by_a_newer_version(factory: &dyn Factory) {
    let (inbox, blobs) = factory.fresh(Duration::from_secs(60)).await;
    deliver(blobs.as_ref(), "alice", "m1", 10).await;
    let (alice, m1) = (user("alice"), id("m1"));
    let claim = inbox.claim(&alice, &m1, 2).await.unwrap();
    inbox
        .finish(&alice, &m1, &claim.claim, Outcome::Failed { version: 2 })
        .await
        .unwrap();
    for version in [1, 2] {
        assert!(matches!(
            inbox.claim(&alice, &m1, version).await,
            Err(IncomingError::Claimed)
        ));
    }
    let listing = inbox
        .list(
            &alice,
            &IncomingQuery {
                version: Some(3),
                ..IncomingQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listing.messages.len(), 1);
    assert_eq!(listing.messages[0].state, MessageState::Failed);
    assert_eq!(listing.messages[0].failed_version, Some(2));
    inbox.claim(&alice, &m1, 3).await.unwrap();
}

/// Listings are oldest first, paged, skip oversized messages and count pending.
pub async fn listing_orders_pages_and_skips_oversized(factory: &dyn Factory) {
    let (inbox, blobs) = factory.fresh(Duration::from_secs(60)).await;
    for (message, size) in [("c", 10), ("a", 5000), ("b", 10), ("d", 10)] {
        deliver(blobs.as_ref(), "alice", message, size).await;
    }
    let alice = user("alice");
    let query = |limit, page| IncomingQuery {
        limit,
        page,
        size_limit: Some(1000),
        ..IncomingQuery::default()
    };
    let all = inbox.list(&alice, &query(None, 0)).await.unwrap();
    let ids: Vec<_> = all.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["c", "b", "d"], "by delivery, not by id");
    assert_eq!(all.skipped_oversized, ["a"]);
    assert_eq!(all.pending, 4);
    let page = inbox.list(&alice, &query(Some(2), 1)).await.unwrap();
    let ids: Vec<_> = page.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["d"]);
    assert!(
        inbox
            .list(&user("bob"), &query(None, 0))
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

/// A published key is read back and replaced by the next; junk is refused.
pub async fn keys_are_published_and_rotated(factory: &dyn Factory) {
    let (inbox, _blobs) = factory.fresh(Duration::from_secs(60)).await;
    let alice = user("alice");
    assert!(matches!(
        inbox.public_key(&alice).await,
        Err(IncomingError::Blob(BlobError::NotFound))
    ));
    inbox.set_public_key(&alice, "age1one").await.unwrap();
    inbox.set_public_key(&alice, "age1two").await.unwrap();
    assert_eq!(inbox.public_key(&alice).await.unwrap(), "age1two");
    assert!(matches!(
        inbox.set_public_key(&alice, "two words").await,
        Err(IncomingError::InvalidKey)
    ));
    assert!(inbox.public_key(&user("bob")).await.is_err());
}

/// After a restart a claimed message is still PROCESSING (its claim still
/// finishes it, nobody else claims it) and a FAILED message still records
/// its version (the same version skips it, a newer one retries it).
pub async fn claims_and_failed_versions_survive_a_restart(factory: &dyn Factory) {
    let threshold = Duration::from_secs(60);
    let (inbox, blobs) = factory.fresh(threshold).await;
    deliver(blobs.as_ref(), "alice", "claimed", 10).await;
    deliver(blobs.as_ref(), "alice", "failed", 10).await;
    let (alice, claimed, failed) = (user("alice"), id("claimed"), id("failed"));
    let held = inbox.claim(&alice, &claimed, 1).await.unwrap();
    let lost = inbox.claim(&alice, &failed, 1).await.unwrap();
    inbox
        .finish(&alice, &failed, &lost.claim, Outcome::Failed { version: 1 })
        .await
        .unwrap();
    drop(inbox);

    let inbox = factory.reopen(threshold).await;
    for message in [&claimed, &failed] {
        assert!(matches!(
            inbox.claim(&alice, message, 1).await,
            Err(IncomingError::Claimed)
        ));
    }
    let listing = inbox
        .list(
            &alice,
            &IncomingQuery {
                include_processing: true,
                version: Some(1),
                ..IncomingQuery::default()
            },
        )
        .await
        .unwrap();
    let states: Vec<_> = listing
        .messages
        .iter()
        .map(|m| (m.id.as_str(), m.state))
        .collect();
    assert_eq!(states, [("claimed", MessageState::Processing)]);
    assert_eq!(listing.pending, 0);
    let newer = inbox
        .list(
            &alice,
            &IncomingQuery {
                version: Some(2),
                ..IncomingQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(newer.messages.len(), 1);
    assert_eq!(newer.messages[0].failed_version, Some(1));
    inbox
        .finish(&alice, &claimed, &held.claim, Outcome::Processed)
        .await
        .unwrap();
    inbox.claim(&alice, &failed, 2).await.unwrap();
}

/// A claim made before a restart still expires after its threshold, and the
/// message is then claimable again.
pub async fn a_claim_expires_after_a_restart(factory: &dyn Factory) {
    let threshold = Duration::from_millis(300);
    let (inbox, blobs) = factory.fresh(threshold).await;
    deliver(blobs.as_ref(), "alice", "m1", 10).await;
    let (alice, m1) = (user("alice"), id("m1"));
    let first = inbox.claim(&alice, &m1, 1).await.unwrap();
    drop(inbox);
    let inbox = factory.reopen(threshold).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        match inbox.claim(&alice, &m1, 1).await {
            Ok(claim) => break claim,
            Err(IncomingError::Claimed) => {
                assert!(std::time::Instant::now() < deadline, "claim never expired");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    };
    assert!(matches!(
        inbox
            .finish(&alice, &m1, &first.claim, Outcome::Processed)
            .await,
        Err(IncomingError::Claimed)
    ));
    inbox
        .finish(&alice, &m1, &second.claim, Outcome::Processed)
        .await
        .unwrap();
}
