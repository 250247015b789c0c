//! The [`ChangeNotifier`] contract: a wait without a marker (or with one the
//! notifier does not know) answers at once with every kind; a wait with a
//! current marker answers with exactly the kinds changed after it, or with
//! none once its time is up; no change is lost between an answer and the next
//! wait; a replica is not woken by its own documents; users are isolated;
//! malformed markers are refused.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::blobs::UserId;
use crate::error::Error;
use crate::notify::{ChangeKind, ChangeNotifier, ChangesResponse};

/// Makes the notifiers the cases run on.
pub trait Factory: Sync {
    /// A new notifier that has seen no change.
    fn fresh(&self) -> BoxFuture<'_, Arc<dyn ChangeNotifier>>;
}

/// A wait that must end because of a change, not its timeout.
const LONG: Duration = Duration::from_secs(30);
/// A wait expected to run out.
const SHORT: Duration = Duration::from_millis(100);

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

async fn wait(
    n: &dyn ChangeNotifier,
    who: &UserId,
    since: Option<&str>,
    source: Option<&str>,
    timeout: Duration,
) -> ChangesResponse {
    tokio::time::timeout(
        timeout + Duration::from_secs(10),
        n.wait(who, since, source, timeout),
    )
    .await
    .expect("a wait ends by its timeout at the latest")
    .unwrap()
}

/// No marker: every kind at once, and a valid marker.
pub async fn without_a_marker_every_kind_at_once(factory: &dyn Factory) {
    let n = factory.fresh().await;
    let answer = wait(&*n, &user("alice"), None, None, LONG).await;
    assert_eq!(answer.changed, ChangeKind::ALL.to_vec());
    assert!(soledad_protocol::is_valid_marker(&answer.marker));
}

/// Nothing changed: the wait runs out empty, with a marker still usable.
pub async fn no_change_ends_empty_after_the_timeout(factory: &dyn Factory) {
    let n = factory.fresh().await;
    let alice = user("alice");
    let first = wait(&*n, &alice, None, None, LONG).await;
    let quiet = wait(&*n, &alice, Some(&first.marker), None, SHORT).await;
    assert!(quiet.changed.is_empty(), "{quiet:?}");
    n.notify(&alice, ChangeKind::Blobs, None).await;
    let after = wait(&*n, &alice, Some(&quiet.marker), None, LONG).await;
    assert_eq!(after.changed, vec![ChangeKind::Blobs]);
}

/// A change between two waits is reported by the second; a change during a
/// wait wakes it; each answer names only the kinds that changed.
pub async fn changes_are_reported_by_kind_and_never_lost(factory: &dyn Factory) {
    let n = factory.fresh().await;
    let alice = user("alice");
    let first = wait(&*n, &alice, None, None, LONG).await;
    n.notify(&alice, ChangeKind::Incoming, None).await;
    let second = wait(&*n, &alice, Some(&first.marker), None, LONG).await;
    assert_eq!(second.changed, vec![ChangeKind::Incoming]);
    assert_ne!(second.marker, first.marker);
    let waiting = wait(&*n, &alice, Some(&second.marker), None, LONG);
    let notify = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n.notify(&alice, ChangeKind::Docs, Some("replica-b")).await;
    };
    let (third, ()) = tokio::join!(waiting, notify);
    assert_eq!(third.changed, vec![ChangeKind::Docs]);
    // Several kinds since the marker: all of them.
    n.notify(&alice, ChangeKind::Blobs, None).await;
    n.notify(&alice, ChangeKind::Incoming, None).await;
    let fourth = wait(&*n, &alice, Some(&third.marker), None, LONG).await;
    let mut kinds = fourth.changed;
    kinds.sort_by_key(|k| ChangeKind::ALL.iter().position(|a| a == k));
    assert_eq!(kinds, vec![ChangeKind::Blobs, ChangeKind::Incoming]);
}

/// Documents uploaded by a replica do not wake that replica, but do wake
/// every other one, also when another replica's upload came first.
pub async fn a_replica_is_not_woken_by_its_own_documents(factory: &dyn Factory) {
    let n = factory.fresh().await;
    let alice = user("alice");
    let start = wait(&*n, &alice, None, None, LONG).await.marker;
    n.notify(&alice, ChangeKind::Docs, Some("replica-a")).await;
    let own = wait(&*n, &alice, Some(&start), Some("replica-a"), SHORT).await;
    assert!(own.changed.is_empty(), "{own:?}");
    let other = wait(&*n, &alice, Some(&start), Some("replica-b"), LONG).await;
    assert_eq!(other.changed, vec![ChangeKind::Docs]);
    n.notify(&alice, ChangeKind::Docs, Some("replica-b")).await;
    n.notify(&alice, ChangeKind::Docs, Some("replica-a")).await;
    let mixed = wait(&*n, &alice, Some(&own.marker), Some("replica-a"), LONG).await;
    assert_eq!(mixed.changed, vec![ChangeKind::Docs]);
}

/// One user's changes never wake another; markers of one user or of another
/// notifier mean "unknown" (every kind); malformed markers are refused.
pub async fn users_are_isolated_and_markers_checked(factory: &dyn Factory) {
    let n = factory.fresh().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let mark_alice = wait(&*n, &alice, None, None, LONG).await.marker;
    wait(&*n, &bob, None, None, LONG).await;
    n.notify(&bob, ChangeKind::Docs, None).await;
    n.notify(&bob, ChangeKind::Blobs, None).await;
    let quiet = wait(&*n, &alice, Some(&mark_alice), None, SHORT).await;
    assert!(quiet.changed.is_empty(), "{quiet:?}");
    let other = factory.fresh().await;
    let foreign = wait(&*other, &alice, None, None, LONG).await.marker;
    if foreign != mark_alice {
        let answer = wait(&*n, &alice, Some(&foreign), None, LONG).await;
        assert_eq!(answer.changed, ChangeKind::ALL.to_vec());
    }
    for bad in ["", "a b", "a&b", "é"] {
        assert!(
            matches!(
                n.wait(&alice, Some(bad), None, SHORT).await,
                Err(Error::InvalidRequest { .. })
            ),
            "{bad:?}"
        );
    }
}
