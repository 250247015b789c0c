//! `GET /changes/{uuid}`, the long poll of live sync: answers at once without
//! a marker, "no change" after the wait, wakes on the owner's writes only,
//! refuses other users and malformed queries, caps waits per user (429) and
//! per server (503), frees a slot when its client goes away, and ends every
//! wait at a shutdown.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::util::{Creds, TestServer, eventually, service_header};

/// Sends a change request; returns the status and the JSON body.
async fn changes(t: &TestServer, who: &Creds, owner: &str, query: &str) -> (StatusCode, Value) {
    let response = t
        .client
        .get(t.url(&format!("/changes/{owner}{query}")))
        .header("authorization", &who.header)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn kinds(body: &Value) -> Vec<String> {
    body["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

fn marker(body: &Value) -> String {
    body["marker"].as_str().unwrap().to_owned()
}

/// A fresh marker of `who` (no `since`: answered at once).
async fn current(t: &TestServer, who: &Creds) -> String {
    let (status, body) = changes(t, who, &who.uuid, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    marker(&body)
}

#[tokio::test]
async fn without_a_marker_every_kind_is_announced_at_once() {
    let t = TestServer::start().await;
    let (status, body) = changes(&t, &t.alice, "alice", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kinds(&body), ["docs", "blobs", "incoming"]);
    assert!(!marker(&body).is_empty());
}

#[tokio::test]
async fn with_nothing_changed_the_wait_ends_with_no_change() {
    let t = TestServer::start_with(|c| c.live_wait = Duration::from_secs(1)).await;
    let since = current(&t, &t.alice).await;
    // Asking for longer than the server allows: capped at live_wait_secs.
    let started = Instant::now();
    let (status, body) = changes(
        &t,
        &t.alice,
        "alice",
        &format!("?since={since}&wait_secs=600"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(kinds(&body).is_empty(), "{body}");
    assert_eq!(marker(&body), since);
    assert!(started.elapsed() < Duration::from_secs(5), "capped wait");
    // wait_secs=0 answers at once, with no change either.
    let (status, body) = changes(
        &t,
        &t.alice,
        "alice",
        &format!("?since={since}&wait_secs=0"),
    )
    .await;
    assert_eq!((status, kinds(&body).len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn a_blob_write_wakes_its_owner_with_blobs_only() {
    let t = TestServer::start().await;
    let since = current(&t, &t.alice).await;
    let bob_since = current(&t, &t.bob).await;
    let waiting = {
        let (client, url, header) = (
            t.client.clone(),
            t.url(&format!("/changes/alice?since={since}")),
            t.alice.header.clone(),
        );
        tokio::spawn(async move {
            let response = client
                .get(url)
                .header("authorization", header)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        })
    };
    let put = t
        .client
        .put(t.url("/blobs/alice/b1"))
        .header("authorization", &t.alice.header)
        .body("opaque")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the write wakes the wait")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kinds(&body), ["blobs"]);
    assert_ne!(marker(&body), since);
    // Bob saw nothing of it.
    let (_, body) = changes(
        &t,
        &t.bob,
        "bob",
        &format!("?since={bob_since}&wait_secs=0"),
    )
    .await;
    assert!(kinds(&body).is_empty(), "{body}");
    // A change between two waits is not lost: flags, then the next wait.
    let since = marker(&body_of_alice(&t, &since).await);
    let flagged = t
        .client
        .post(t.url("/blobs/alice/b1"))
        .header("authorization", &t.alice.header)
        .body("[\"PROCESSED\"]")
        .send()
        .await
        .unwrap();
    assert!(flagged.status().is_success());
    let (_, body) = changes(&t, &t.alice, "alice", &format!("?since={since}")).await;
    assert_eq!(kinds(&body), ["blobs"]);
}

/// Alice's state after `since` (answered at once: something changed).
async fn body_of_alice(t: &TestServer, since: &str) -> Value {
    changes(t, &t.alice, "alice", &format!("?since={since}&wait_secs=0"))
        .await
        .1
}

#[tokio::test]
async fn an_incoming_delivery_announces_incoming() {
    let t = TestServer::start().await;
    let since = current(&t, &t.alice).await;
    let delivered = t
        .plain
        .put(t.services_url("/incoming/alice/m1"))
        .header("authorization", service_header())
        .body("sealed")
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), StatusCode::OK);
    let (_, body) = changes(&t, &t.alice, "alice", &format!("?since={since}")).await;
    assert_eq!(kinds(&body), ["incoming"]);
}

#[tokio::test]
async fn only_the_owner_waits_and_bad_queries_are_refused() {
    let t = TestServer::start().await;
    let since = current(&t, &t.alice).await;
    for owner in ["alice", "%61lice", "ALICE", "alice%2F..%2Fbob"] {
        let (status, _) = changes(&t, &t.bob, owner, "").await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{owner}: {status}"
        );
    }
    // Bob's own marker on Alice's route changes nothing: still 403.
    let (status, _) = changes(&t, &t.bob, "alice", &format!("?since={since}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let anonymous = t.client.get(t.url("/changes/alice")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for query in [
        "?since=a%20b",
        "?since=%26x",
        &format!("?since={}", "m".repeat(300)),
        "?source=a%2Fb",
        "?wait_secs=-1",
        "?wait_secs=soon",
    ] {
        let (status, body) = changes(&t, &t.alice, "alice", query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    // A marker of another server (or a restart) is not an error: everything.
    let (status, body) = changes(&t, &t.alice, "alice", "?since=0123456789abcdef.5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kinds(&body).len(), 3);
}

/// Starts a change request of `who` that waits (a marker, nothing changes).
fn park(t: &TestServer, who: &Creds, since: &str) -> tokio::task::JoinHandle<StatusCode> {
    let (client, url, header) = (
        t.client.clone(),
        t.url(&format!("/changes/{}?since={since}", who.uuid)),
        who.header.clone(),
    );
    tokio::spawn(async move {
        client
            .get(url)
            .header("authorization", header)
            .send()
            .await
            .map_or(StatusCode::IM_A_TEAPOT, |r| r.status())
    })
}

#[tokio::test]
async fn waits_are_capped_per_user_then_per_server_and_freed_when_clients_leave() {
    let t = TestServer::start_with(|c| {
        c.live_waits_per_user = 2;
        c.max_live_waits = 3;
    })
    .await;
    let alice_since = current(&t, &t.alice).await;
    let bob_since = current(&t, &t.bob).await;
    let parked = [
        park(&t, &t.alice, &alice_since),
        park(&t, &t.alice, &alice_since),
    ];
    // Once both are waiting, a third of Alice's is refused at once.
    eventually("alice's third wait refused with 429", || async {
        changes(&t, &t.alice, "alice", "").await.0 == StatusCode::TOO_MANY_REQUESTS
    })
    .await;
    let bob_parked = park(&t, &t.bob, &bob_since);
    eventually("the server's cap refuses bob with 503", || async {
        let (status, body) = changes(&t, &t.bob, "bob", "").await;
        status == StatusCode::SERVICE_UNAVAILABLE && body["error"] == "unavailable"
    })
    .await;
    // Alice's clients go away: her slots come back.
    for task in parked {
        task.abort();
    }
    eventually("alice's slots freed", || async {
        changes(&t, &t.alice, "alice", "").await.0 == StatusCode::OK
    })
    .await;
    bob_parked.abort();
}

#[tokio::test]
async fn a_shutdown_ends_waits_at_once_and_a_new_server_announces_everything() {
    let mut t = TestServer::start_with(|c| c.live_waits_per_user = 1).await;
    let since = current(&t, &t.alice).await;
    let parked = park(&t, &t.alice, &since);
    // It waits once a second request finds Alice's only slot taken.
    eventually("the wait is in flight", || async {
        changes(&t, &t.alice, "alice", "").await.0 == StatusCode::TOO_MANY_REQUESTS
    })
    .await;
    let server = t.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("a waiting change request does not hold the shutdown")
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    t.start_again().await;
    let (status, body) = changes(&t, &t.alice, "alice", &format!("?since={since}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kinds(&body), ["docs", "blobs", "incoming"]);
}

#[tokio::test]
async fn a_flood_of_waits_from_one_user_is_refused_at_once_and_others_still_wait() {
    let t = TestServer::start().await;
    let since = current(&t, &t.alice).await;
    let bob_since = current(&t, &t.bob).await;
    // 100 waits of Alice at once (one HTTP/2 connection): the server holds
    // live_waits_per_user of them and refuses the rest at once.
    let flood: Vec<_> = (0..100).map(|_| park(&t, &t.alice, &since)).collect();
    let per_user = soledad_server::DEFAULT_LIVE_WAITS_PER_USER;
    let deadline = Instant::now() + Duration::from_secs(5);
    while flood.iter().filter(|task| task.is_finished()).count() < 100 - per_user {
        assert!(Instant::now() < deadline, "refusals must come at once");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (refused, held): (Vec<_>, Vec<_>) = flood.into_iter().partition(|t| t.is_finished());
    for task in refused {
        assert_eq!(task.await.unwrap(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(held.len(), per_user, "the others still wait");
    // Bob still waits, and is woken by his own write.
    let bob = park(&t, &t.bob, &bob_since);
    let put = t
        .client
        .put(t.url("/blobs/bob/b1"))
        .header("authorization", &t.bob.header)
        .body("opaque")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let status = tokio::time::timeout(Duration::from_secs(10), bob)
        .await
        .expect("bob's wait is answered")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    for task in held {
        task.abort();
    }
}
