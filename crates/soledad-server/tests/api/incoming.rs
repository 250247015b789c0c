//! The incoming box: delivery on the services API only.

use reqwest::StatusCode;
use soledad_crypto::{Preamble, Scheme};
use soledad_server::blobs::ENTRY_OVERHEAD_BYTES;

use crate::blobs::Blobs;
use crate::util::{TestServer, auth_header, raw_tcp, service_header};

async fn deliver(
    t: &TestServer,
    uuid: &str,
    id: &str,
    auth: Option<&str>,
    body: &'static [u8],
) -> StatusCode {
    let mut request = t
        .plain
        .put(t.services_url(&format!("/incoming/{uuid}/{id}")))
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn delivery_lands_in_mx_pending_with_external_preamble() {
    let t = TestServer::start().await;
    assert!(t.running().services_addr().ip().is_loopback());
    let payload: &'static [u8] = b"-----BEGIN PGP MESSAGE----- opaque";
    assert_eq!(
        deliver(&t, "alice", "msg1", Some(&service_header()), payload).await,
        StatusCode::OK
    );
    // A second delivery of the same id conflicts.
    assert_eq!(
        deliver(&t, "alice", "msg1", Some(&service_header()), payload).await,
        StatusCode::CONFLICT
    );

    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert!(b.ids("").await.is_empty(), "not in the default namespace");
    assert_eq!(b.ids("?namespace=MX").await, ["msg1"]);
    assert_eq!(b.ids("?namespace=MX&filter_flag=PENDING").await, ["msg1"]);
    let stored = b
        .get("msg1", "?namespace=MX", None)
        .await
        .bytes()
        .await
        .unwrap();
    let (preamble, used) = Preamble::parse(&stored).unwrap();
    assert_eq!(preamble.scheme(), Scheme::External);
    assert_eq!(preamble.blob_id(), "msg1");
    assert_eq!(preamble.plaintext_size(), payload.len() as u64);
    assert_eq!(&stored[used..], payload);
    // Usage counts the stored bytes, preamble included, and the blob's two files.
    assert_eq!(
        b.usage().await.0,
        stored.len() as u64 + 2 * ENTRY_OVERHEAD_BYTES
    );

    // The consumer flags it as in the incoming loop.
    assert_eq!(
        b.flags("msg1", "?namespace=MX", r#"["PROCESSING"]"#).await,
        StatusCode::NO_CONTENT
    );
    assert!(b.ids("?namespace=MX&filter_flag=PENDING").await.is_empty());
    t.shutdown().await;
}

#[tokio::test]
async fn delivery_refused_without_service_token_and_on_users_port() {
    let t = TestServer::start().await;
    assert_eq!(
        deliver(&t, "alice", "m", None, b"x").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(
            &t,
            "alice",
            "m",
            Some(&auth_header("incoming", "bad")),
            b"x"
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(&t, "alice", "m", Some(&t.alice.header), b"x").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(&t, "alice", "bad.id", Some(&service_header()), b"x").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        deliver(&t, "al%2Fice", "m", Some(&service_header()), b"x").await,
        StatusCode::BAD_REQUEST
    );

    // The users API does not serve the incoming route, whoever asks.
    let on_users = |auth: String| {
        t.client
            .put(t.url("/incoming/alice/m"))
            .header("authorization", auth)
            .body("x")
            .send()
    };
    assert_eq!(
        on_users(t.alice.header.clone()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        on_users(service_header()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The services API serves nothing of the users API.
    let response = t
        .plain
        .get(t.services_url("/blobs/alice"))
        .header("authorization", service_header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A chunked delivery without a length is refused (the preamble records it).
    let addr = t.running().services_addr();
    let request = format!(
        "PUT /incoming/alice/m2 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        service_header()
    );
    let (status, _) = tokio::task::spawn_blocking(move || raw_tcp(addr, request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status, 400);

    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert!(b.ids("?namespace=MX").await.is_empty());
    assert_eq!(b.usage().await.0, 0);
    t.shutdown().await;
}

// ---- claims, outcomes, listing, keys (issue 12) ----

use crate::util::Creds;

async fn deliver_owned(t: &TestServer, uuid: &str, id: &str, body: Vec<u8>) -> StatusCode {
    t.plain
        .put(t.services_url(&format!("/incoming/{uuid}/{id}")))
        .header("authorization", service_header())
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn box_list(t: &TestServer, who: &Creds, query: &str) -> (StatusCode, serde_json::Value) {
    let response = t
        .client
        .get(t.url(&format!("/incoming/{}{query}", who.uuid)))
        .header("authorization", &who.header)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn ids_of(listing: &serde_json::Value) -> Vec<String> {
    listing["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn claim_as(
    t: &TestServer,
    who: &Creds,
    owner_segment: &str,
    id: &str,
    version: u64,
) -> (StatusCode, serde_json::Value) {
    let response = t
        .client
        .post(t.url(&format!(
            "/incoming/{owner_segment}/{id}/claim?version={version}"
        )))
        .header("authorization", &who.header)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

async fn finish(
    t: &TestServer,
    who: &Creds,
    id: &str,
    what: &str,
    body: serde_json::Value,
) -> StatusCode {
    t.client
        .post(t.url(&format!("/incoming/{}/{id}/{what}", who.uuid)))
        .header("authorization", &who.header)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_claim_is_granted_once_and_processed_deletes_the_message() {
    let t = TestServer::start().await;
    for id in ["m1", "m2", "m3"] {
        assert_eq!(
            deliver_owned(&t, "alice", id, b"sealed".to_vec()).await,
            StatusCode::OK
        );
    }
    let (status, listing) = box_list(&t, &t.alice, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&listing), ["m1", "m2", "m3"], "oldest first");
    assert_eq!(listing["pending"], 3);

    // Ten concurrent claims on one message: exactly one wins.
    let claims =
        futures_util::future::join_all((0..10).map(|_| claim_as(&t, &t.alice, "alice", "m1", 1)))
            .await;
    let granted: Vec<_> = claims
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(granted.len(), 1, "{claims:?}");
    for (status, body) in &claims {
        if *status != StatusCode::OK {
            assert_eq!(*status, StatusCode::CONFLICT);
            assert_eq!(body["error"], "message_claimed");
        }
    }
    let secret = granted[0].1["claim"].as_str().unwrap().to_owned();

    // Claimed messages are left out unless asked for.
    let (_, listing) = box_list(&t, &t.alice, "").await;
    assert_eq!(ids_of(&listing), ["m2", "m3"]);
    assert_eq!(listing["pending"], 2);
    let (_, listing) = box_list(&t, &t.alice, "?include_processing=true").await;
    assert_eq!(ids_of(&listing), ["m1", "m2", "m3"]);
    assert_eq!(listing["messages"][0]["state"], "PROCESSING");

    // Marking needs the claim's secret.
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "processed",
            serde_json::json!({"claim": "nope"})
        )
        .await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "processed",
            serde_json::json!({"claim": secret})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(
        b.ids("?namespace=MX").await,
        ["m2", "m3"],
        "processed is deleted"
    );
    // A finished claim cannot be used again, and the message is gone.
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "processed",
            serde_json::json!({"claim": secret})
        )
        .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        claim_as(&t, &t.alice, "alice", "m1", 1).await.0,
        StatusCode::NOT_FOUND
    );
    t.shutdown().await;
}

#[tokio::test]
async fn an_expired_claim_lets_another_device_take_the_message() {
    let t = TestServer::start_with(|c| c.processing_threshold = std::time::Duration::from_secs(1))
        .await;
    assert_eq!(
        deliver_owned(&t, "alice", "m1", b"sealed".to_vec()).await,
        StatusCode::OK
    );
    let (status, first) = claim_as(&t, &t.alice, "alice", "m1", 1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["expires_in_secs"], 1);
    assert_eq!(
        claim_as(&t, &t.alice, "alice", "m1", 1).await.0,
        StatusCode::CONFLICT
    );
    // The first device died: after the threshold the message is pending again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let second = loop {
        let (status, body) = claim_as(&t, &t.alice, "alice", "m1", 1).await;
        if status == StatusCode::OK {
            break body;
        }
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            std::time::Instant::now() < deadline,
            "the claim never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // The dead device's late confirmation is refused; the new claim's works.
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "processed",
            serde_json::json!({"claim": first["claim"]})
        )
        .await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "processed",
            serde_json::json!({"claim": second["claim"]})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let (_, listing) = box_list(&t, &t.alice, "?include_processing=true").await;
    assert!(ids_of(&listing).is_empty());
    t.shutdown().await;
}

#[tokio::test]
async fn a_failed_message_is_retried_only_by_a_newer_version() {
    let t = TestServer::start().await;
    assert_eq!(
        deliver_owned(&t, "alice", "m1", b"sealed".to_vec()).await,
        StatusCode::OK
    );
    let (_, claim) = claim_as(&t, &t.alice, "alice", "m1", 3).await;
    // `failed` needs a version.
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "failed",
            serde_json::json!({"claim": claim["claim"]})
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "failed",
            serde_json::json!({"claim": claim["claim"], "version": 3})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(b.ids("?namespace=MX&filter_flag=FAILED").await, ["m1"]);
    // Not pending for version 3; listed (with its version) for version 4.
    let (_, listing) = box_list(&t, &t.alice, "?version=3").await;
    assert!(ids_of(&listing).is_empty());
    assert_eq!(listing["pending"], 0);
    let (_, listing) = box_list(&t, &t.alice, "?version=4").await;
    assert_eq!(ids_of(&listing), ["m1"]);
    assert_eq!(listing["messages"][0]["state"], "FAILED");
    assert_eq!(listing["messages"][0]["failed_version"], 3);
    for version in [1, 3] {
        assert_eq!(
            claim_as(&t, &t.alice, "alice", "m1", version).await.0,
            StatusCode::CONFLICT
        );
    }
    let (status, claim) = claim_as(&t, &t.alice, "alice", "m1", 4).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "m1",
            "processed",
            serde_json::json!({"claim": claim["claim"]})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert!(b.ids("?namespace=MX").await.is_empty());
    t.shutdown().await;
}

/// Issue 12: a server restart keeps claims and failed versions (they are in
/// the data directory, not in memory).
#[tokio::test]
async fn issue12_claims_and_failed_versions_survive_a_server_restart() {
    let mut t = TestServer::start().await;
    for id in ["held", "failed"] {
        assert_eq!(
            deliver_owned(&t, "alice", id, b"sealed".to_vec()).await,
            StatusCode::OK
        );
    }
    let (status, held) = claim_as(&t, &t.alice, "alice", "held", 1).await;
    assert_eq!(status, StatusCode::OK);
    let (_, lost) = claim_as(&t, &t.alice, "alice", "failed", 2).await;
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "failed",
            "failed",
            serde_json::json!({"claim": lost["claim"], "version": 2})
        )
        .await,
        StatusCode::NO_CONTENT
    );

    t.restart().await;

    // Still claimed: nobody else takes it, it is listed as PROCESSING.
    assert_eq!(
        claim_as(&t, &t.alice, "alice", "held", 1).await.0,
        StatusCode::CONFLICT
    );
    let (_, listing) = box_list(&t, &t.alice, "?include_processing=true").await;
    assert_eq!(ids_of(&listing), ["held"]);
    assert_eq!(listing["messages"][0]["state"], "PROCESSING");
    assert_eq!(listing["pending"], 0);
    // Still failed at version 2: version 2 skips it, version 3 retries it.
    assert_eq!(
        claim_as(&t, &t.alice, "alice", "failed", 2).await.0,
        StatusCode::CONFLICT
    );
    let (_, listing) = box_list(&t, &t.alice, "?version=3").await;
    assert_eq!(ids_of(&listing), ["failed"]);
    assert_eq!(listing["messages"][0]["failed_version"], 2);
    // The claim made before the restart still confirms its message.
    assert_eq!(
        finish(
            &t,
            &t.alice,
            "held",
            "processed",
            serde_json::json!({"claim": held["claim"]})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        claim_as(&t, &t.alice, "alice", "failed", 3).await.0,
        StatusCode::OK
    );
    t.shutdown().await;
}

#[tokio::test]
async fn listing_pages_skips_oversized_and_refuses_unknown_options() {
    let t = TestServer::start().await;
    for (id, size) in [("a1", 10), ("a2", 5000), ("a3", 10), ("a4", 10)] {
        assert_eq!(
            deliver_owned(&t, "alice", id, vec![b'x'; size]).await,
            StatusCode::OK
        );
    }
    let (_, listing) = box_list(&t, &t.alice, "?size_limit=1000").await;
    assert_eq!(ids_of(&listing), ["a1", "a3", "a4"]);
    assert_eq!(listing["skipped_oversized"], serde_json::json!(["a2"]));
    let (_, page0) = box_list(&t, &t.alice, "?size_limit=1000&limit=2&page=0").await;
    let (_, page1) = box_list(&t, &t.alice, "?size_limit=1000&limit=2&page=1").await;
    assert_eq!(ids_of(&page0), ["a1", "a3"]);
    assert_eq!(ids_of(&page1), ["a4"]);
    assert_eq!(page1["pending"], 4, "pending counts the whole box");
    for bad in [
        "?colour=red",
        "?limit=0",
        "?limit=x",
        "?include_processing=maybe",
    ] {
        let (status, body) = box_list(&t, &t.alice, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_request", "{bad}");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn deliveries_need_a_known_user_and_count_against_the_quota() {
    // Room for one small message: its bytes, its preamble and a live blob's two
    // entries of quota.
    let t = TestServer::start_with(|c| {
        c.quota_bytes = 300 + 2 * soledad_server::blobs::ENTRY_OVERHEAD_BYTES
    })
    .await;
    assert_eq!(
        deliver_owned(&t, "mallory", "m1", b"x".to_vec()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        deliver_owned(&t, "alice", "m1", vec![b'x'; 100]).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver_owned(&t, "alice", "m2", vec![b'x'; 250]).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(b.ids("?namespace=MX").await, ["m1"]);
    t.shutdown().await;
}

#[tokio::test]
async fn another_user_can_neither_list_nor_claim_nor_mark() {
    let t = TestServer::start().await;
    assert_eq!(
        deliver_owned(&t, "alice", "m1", b"sealed".to_vec()).await,
        StatusCode::OK
    );
    // Bob's token on Alice's box, however the owner segment is spelled.
    for segment in ["alice", "%61lice", "%2561lice", "ALICE", "alice%2F..%2Fbob"] {
        let (status, _) = claim_as(&t, &t.bob, segment, "m1", 1).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{segment}: {status}"
        );
        let response = t
            .client
            .get(t.url(&format!("/incoming/{segment}")))
            .header("authorization", &t.bob.header)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                response.status(),
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
            ),
            "{segment}"
        );
    }
    // A service token is not a user token.
    let response = t
        .client
        .post(t.url("/incoming/alice/m1/claim"))
        .header("authorization", service_header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Bob's own box has no such message.
    assert_eq!(
        claim_as(&t, &t.bob, "bob", "m1", 1).await.0,
        StatusCode::NOT_FOUND
    );
    // Nothing was claimed: Alice still gets it.
    let (_, listing) = box_list(&t, &t.alice, "").await;
    assert_eq!(ids_of(&listing), ["m1"]);
    assert_eq!(
        claim_as(&t, &t.alice, "alice", "m1", 1).await.0,
        StatusCode::OK
    );
    t.shutdown().await;
}

#[tokio::test]
async fn the_published_key_is_served_to_services_and_rotates() {
    let t = TestServer::start().await;
    let key_url = |who: &str| t.services_url(&format!("/incoming-key/{who}"));
    let service_get = |who: &'static str| {
        t.plain
            .get(key_url(who))
            .header("authorization", service_header())
            .send()
    };
    assert_eq!(
        service_get("alice").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    for key in ["age1first", "age1second"] {
        let status = t
            .client
            .put(t.url("/incoming-key/alice"))
            .header("authorization", &t.alice.header)
            .body(key)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
        let served = service_get("alice").await.unwrap();
        assert_eq!(served.status(), StatusCode::OK);
        assert_eq!(served.text().await.unwrap(), key);
    }
    // Bob cannot replace Alice's key; junk keys are refused.
    let status = t
        .client
        .put(t.url("/incoming-key/alice"))
        .header("authorization", &t.bob.header)
        .body("age1bob")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = t
        .client
        .put(t.url("/incoming-key/alice"))
        .header("authorization", &t.alice.header)
        .body("two words")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        service_get("alice").await.unwrap().text().await.unwrap(),
        "age1second"
    );
    // Unknown users and users without a key: 404; no service token: 401.
    assert_eq!(
        service_get("mallory").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        service_get("bob").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let anonymous = t.plain.get(key_url("alice")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    t.shutdown().await;
}

// ---- sealed delivery (library and `soledad-server deliver`) ----

fn identity_of(byte: u8) -> soledad_crypto::IncomingIdentity {
    let secret =
        soledad_crypto::StorageSecret::from_bytes([byte; soledad_crypto::STORAGE_SECRET_LEN]);
    soledad_crypto::IncomingIdentity::derive(&secret, 0).unwrap()
}

async fn publish(t: &TestServer, who: &Creds, key: &str) {
    let status = t
        .client
        .put(t.url(&format!("/incoming-key/{}", who.uuid)))
        .header("authorization", &who.header)
        .body(key.to_owned())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Opens a stored incoming blob (preamble, then the age seal).
async fn open_stored(
    t: &TestServer,
    id: &str,
    identity: &soledad_crypto::IncomingIdentity,
) -> Vec<u8> {
    use std::io::Read as _;
    let b = Blobs { t, who: &t.alice };
    let stored = b
        .get(id, "?namespace=MX", None)
        .await
        .bytes()
        .await
        .unwrap();
    let (_, used) = Preamble::parse(&stored).unwrap();
    let mut plaintext = Vec::new();
    soledad_crypto::open_incoming(std::slice::from_ref(identity), &stored[used..])
        .unwrap()
        .read_to_end(&mut plaintext)
        .unwrap();
    plaintext
}

/// Every file under `dir`, searched for `needle`.
fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn the_deliverer_seals_to_the_published_key_and_the_server_keeps_no_plaintext() {
    let t = TestServer::start().await;
    let deliverer = soledad_server::deliver::Deliverer::new(
        &t.services_url(""),
        "incoming",
        crate::util::SERVICE_TOKEN,
    )
    .unwrap();
    // No key published yet: refused, nothing stored.
    assert!(matches!(
        deliverer.deliver("alice", Some("m0"), &b"x"[..]).await,
        Err(soledad_server::deliver::DeliverError::NoKey)
    ));
    assert!(matches!(
        deliverer.deliver("mallory", None, &b"x"[..]).await,
        Err(soledad_server::deliver::DeliverError::NoKey)
    ));
    let alice = identity_of(1);
    publish(&t, &t.alice, &alice.public_key()).await;

    let marker = b"MARKER-3b1f-plaintext-of-the-mail";
    let mut message = b"Subject: hello\r\n\r\n".to_vec();
    for _ in 0..2000 {
        message.extend_from_slice(marker);
    }
    let receipt = deliverer
        .deliver("alice", Some("m1"), std::io::Cursor::new(message.clone()))
        .await
        .unwrap();
    assert_eq!(receipt.id, "m1");
    let random = deliverer
        .deliver("alice", None, &b"second"[..])
        .await
        .unwrap();
    assert_eq!(random.id.len(), 32);

    assert_eq!(open_stored(&t, "m1", &alice).await, message);
    assert_eq!(open_stored(&t, &random.id, &alice).await, b"second");
    assert!(
        !files_contain(&t.config.data_path, marker),
        "plaintext found in the server's data directory"
    );
    // Another identity cannot open it.
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    let stored = b
        .get("m1", "?namespace=MX", None)
        .await
        .bytes()
        .await
        .unwrap();
    let (_, used) = Preamble::parse(&stored).unwrap();
    assert!(soledad_crypto::open_incoming(&[identity_of(2)], &stored[used..]).is_err());
    t.shutdown().await;
}

#[tokio::test]
async fn the_deliver_command_pipes_a_message_into_the_box() {
    use std::io::Write as _;
    let t = TestServer::start().await;
    let alice = identity_of(5);
    publish(&t, &t.alice, &alice.public_key()).await;
    let home = tempfile::tempdir().unwrap();
    let data_path = t.config.data_path.clone();
    let url = t.services_url("");
    let deliver = move |args: &[&str], stdin: &'static [u8]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_soledad-server"))
            .env_remove("SOLEDAD_SERVER_CONFIG_FILE")
            .env("HOME", home.path())
            .arg("--data-path")
            .arg(&data_path)
            .arg("deliver")
            .args(args)
            .arg("--url")
            .arg(&url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    let output = tokio::task::spawn_blocking(move || {
        (
            deliver(&["alice", "piped1"], b"From: mx\r\n\r\npiped body"),
            deliver(&["bob", "piped2"], b"no key"),
        )
    });
    let (ok, no_key) = output.await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "piped1");
    assert!(!no_key.status.success());
    assert_eq!(
        open_stored(&t, "piped1", &alice).await,
        b"From: mx\r\n\r\npiped body"
    );
    t.shutdown().await;
}
