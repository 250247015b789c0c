//! Attack: slow bodies. Stalled uploads of one user must not starve other
//! users' uploads or incoming deliveries, a stalled body is cut after the
//! body timeout and releases what it held, and one user cannot run more sync
//! exchanges than allowed.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::util::{ALICE, BOB, Server, eventually, read_response, request_head};

#[tokio::test]
async fn stalled_uploads_of_one_user_do_not_starve_others_or_incoming() {
    let t = Server::start("concurrent_blob_writes = 3\nbody_timeout_secs = 60\n").await;
    // Six uploads from Alice: announce 100 bytes, send one, stall.
    let mut stalled = Vec::new();
    for i in 0..6 {
        let mut stream = t.tls(b"http/1.1").await.unwrap();
        let head = request_head(
            "PUT",
            &format!("/blobs/{ALICE}/s{i}"),
            Some(&t.alice.header),
            100,
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(b"x").await.unwrap();
        stream.flush().await.unwrap();
        stalled.push(stream);
    }
    // At least one of them holds a write permit (it has a temporary file).
    eventually("a stalled upload holds a write permit", || async {
        t.uploads_in_flight() >= 1
    })
    .await;

    let start = Instant::now();
    let response = t
        .client()
        .put(t.url(&format!("/blobs/{BOB}/x")))
        .header("authorization", &t.bob.header)
        .body("hello")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("bob's upload must complete while alice stalls");
    assert_eq!(response.status(), 200);
    let response = t
        .plain()
        .put(t.services_url(&format!("/incoming/{BOB}/m1")))
        .header("authorization", &t.service_header)
        .body("mail")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("an incoming delivery must complete while alice stalls");
    assert_eq!(response.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Alice's uploads hold at most her share of the permits.
    assert!(t.uploads_in_flight() <= 1, "{}", t.uploads_in_flight());
    drop(stalled);
}

#[tokio::test]
async fn a_stalled_body_is_cut_after_the_body_timeout_and_releases_everything() {
    let t =
        // 1000 bytes plus a live blob's two entries of 4 KiB: the whole quota.
        Server::start("concurrent_blob_writes = 1\nbody_timeout_secs = 2\nquota_bytes = 9192\n")
            .await;
    let mut stream = t.tls(b"http/1.1").await.unwrap();
    // Announces the whole quota, sends a byte, stalls.
    let head = request_head(
        "PUT",
        &format!("/blobs/{ALICE}/big"),
        Some(&t.alice.header),
        1000,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    stream.flush().await.unwrap();
    eventually("the stalled upload holds its permit", || async {
        t.uploads_in_flight() == 1
    })
    .await;
    let start = Instant::now();
    let (status, body) = read_response(&mut stream).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        start.elapsed()
    );
    assert!(status == 400 || status == 0, "{status} {body}");
    eventually("the temporary file is removed", || async {
        t.uploads_in_flight() == 0
    })
    .await;
    // The permit (only one), the claim on the id and the reservation of the
    // whole quota are free again: the same upload now succeeds.
    let response = t
        .client()
        .put(t.url(&format!("/blobs/{ALICE}/big")))
        .header("authorization", &t.alice.header)
        .body(vec![7u8; 1000])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn sync_exchanges_per_user_are_capped() {
    let t = Server::start("max_sync_exchanges_per_user = 1\nbody_timeout_secs = 60\n").await;
    // Alice starts an exchange and never sends its body.
    let mut hold = t.tls(b"http/1.1").await.unwrap();
    let head = request_head(
        "POST",
        &format!("/user-{ALICE}/sync-from/r1"),
        Some(&t.alice.header),
        1000,
    );
    hold.write_all(head.as_bytes()).await.unwrap();
    hold.flush().await.unwrap();
    let client = t.client();
    // Polls until the held exchange has reached the server (bounded).
    let deadline = Instant::now() + crate::util::PATIENCE;
    let body: serde_json::Value = loop {
        let response = client
            .post(t.url(&format!("/user-{ALICE}/sync-from/r2")))
            .header("authorization", &t.alice.header)
            .body("")
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            break response.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no 429 for a second exchange");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["error"], "too_many_requests");
    // Bob is not affected.
    let response = client
        .post(t.url(&format!("/user-{BOB}/sync-from/r1")))
        .header("authorization", &t.bob.header)
        .body("")
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 429);
    // Once Alice's exchange ends, she may sync again.
    drop(hold);
    eventually("alice's slot is released", || async {
        client
            .post(t.url(&format!("/user-{ALICE}/sync-from/r2")))
            .header("authorization", &t.alice.header)
            .body("")
            .send()
            .await
            .unwrap()
            .status()
            != 429
    })
    .await;
}

#[tokio::test]
async fn a_stalled_sync_stream_is_cut_and_frees_its_slot() {
    let t = Server::start("max_sync_exchanges_per_user = 1\nbody_timeout_secs = 2\n").await;
    let mut hold = t.tls(b"http/1.1").await.unwrap();
    let head = request_head(
        "POST",
        &format!("/user-{ALICE}/sync-from/r1"),
        Some(&t.alice.header),
        1000,
    );
    hold.write_all(head.as_bytes()).await.unwrap();
    hold.write_all(b"\x00").await.unwrap();
    hold.flush().await.unwrap();
    let start = Instant::now();
    let (status, body) = read_response(&mut hold).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        start.elapsed()
    );
    assert_eq!(status, 400, "{body}");
    // The slot is free again without the client closing anything.
    let response = t
        .client()
        .post(t.url(&format!("/user-{ALICE}/sync-from/r2")))
        .header("authorization", &t.alice.header)
        .body("")
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 429);
    drop(hold);
}
