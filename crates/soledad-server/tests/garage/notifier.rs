//! What only the Garage notifier shows: a device waiting on one server is
//! woken by a write announced through another server over the same cluster.

use std::time::Duration;

use soledad_server::blobs::UserId;
use soledad_server::conformance::block_on;
use soledad_server::garage::GarageBackend;
use soledad_server::notify::{ChangeKind, ChangeNotifier};

use crate::cluster;

#[test]
fn a_wait_on_one_server_is_woken_by_a_write_through_another() {
    if !cluster::requested() {
        return;
    }
    block_on(async {
        let config = cluster::config();
        let one = GarageBackend::connect(config.clone())
            .unwrap()
            .change_notifier();
        let two = GarageBackend::connect(config).unwrap().change_notifier();
        let alice = UserId::parse("alice").unwrap();
        let start = one.wait(&alice, None, None, Duration::ZERO).await.unwrap();
        let waiting = one.wait(
            &alice,
            Some(&start.marker),
            Some("replica-a"),
            Duration::from_secs(60),
        );
        let write = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            two.notify(&alice, ChangeKind::Docs, Some("replica-b"))
                .await;
        };
        let (answer, ()) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(waiting, write)
        })
        .await
        .expect("woken well before the wait's own timeout");
        assert_eq!(answer.unwrap().changed, vec![ChangeKind::Docs]);
        // Its own upload, announced through the other server, does not wake
        // replica-b.
        let marker = one
            .wait(&alice, None, None, Duration::ZERO)
            .await
            .unwrap()
            .marker;
        two.notify(&alice, ChangeKind::Docs, Some("replica-b"))
            .await;
        let own = one
            .wait(
                &alice,
                Some(&marker),
                Some("replica-b"),
                Duration::from_millis(300),
            )
            .await
            .unwrap();
        assert!(own.changed.is_empty(), "{own:?}");
    });
}
