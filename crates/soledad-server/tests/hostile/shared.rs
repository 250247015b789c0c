//! Attack: reading, replacing or deleting another user's key backup in the
//! shared store, and guessing backup ids.

use serde_json::Value;

use crate::util::Server;

#[tokio::test]
async fn another_users_backup_is_invisible_and_untouchable() {
    let t = Server::start("").await;
    let client = t.client();
    let put = |who: &str, id: &str, rev: Option<&str>, body: &'static str| {
        let url = match rev {
            Some(rev) => t.url(&format!("/shared/doc/{id}?old_rev={rev}")),
            None => t.url(&format!("/shared/doc/{id}")),
        };
        client
            .put(url)
            .header("authorization", who)
            .body(body)
            .send()
    };
    let response = put(&t.alice.header, "backup", None, "alice's secret")
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let rev: Value = response.json().await.unwrap();
    let rev = rev["rev"].as_str().unwrap().to_owned();

    // Bob: not found on read and delete (even with the right revision), and
    // his write with Alice's revision conflicts with his own (absent) doc.
    for spelled in ["backup", "%62ackup"] {
        let response = client
            .get(t.url(&format!("/shared/doc/{spelled}")))
            .header("authorization", &t.bob.header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{spelled}");
    }
    let response = client
        .delete(t.url(&format!("/shared/doc/backup?old_rev={rev}")))
        .header("authorization", &t.bob.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        put(&t.bob.header, "backup", Some(&rev), "bob's")
            .await
            .unwrap()
            .status(),
        409
    );
    // Bob's own document of that id is his, and leaves Alice's alone.
    assert_eq!(
        put(&t.bob.header, "backup", None, "bob's")
            .await
            .unwrap()
            .status(),
        201
    );
    let response = client
        .get(t.url("/shared/doc/backup"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-u1db-rev"], rev.as_str());
    assert_eq!(response.text().await.unwrap(), "alice's secret");
}

#[tokio::test]
async fn guessing_backup_ids_is_rate_limited_per_user() {
    let t = Server::start("shared_misses_per_minute = 5\n").await;
    let client = t.client();
    let response = client
        .put(t.url("/shared/doc/mine"))
        .header("authorization", &t.bob.header)
        .body("bob's")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let get = |who: &str, id: String| {
        client
            .get(t.url(&format!("/shared/doc/{id}")))
            .header("authorization", who)
            .send()
    };
    for i in 0..5 {
        assert_eq!(
            get(&t.bob.header, format!("guess{i}"))
                .await
                .unwrap()
                .status(),
            404
        );
    }
    // The bucket is empty: every lookup of Bob's is refused, hit or miss.
    for id in ["guess9", "mine"] {
        let response = get(&t.bob.header, id.to_owned()).await.unwrap();
        assert_eq!(response.status(), 429, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_many_requests");
    }
    // Alice is not affected.
    assert_eq!(
        get(&t.alice.header, "guess0".to_owned())
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn backups_count_against_the_owners_quota() {
    // A backup costs its bytes plus one entry (4 KiB), like a blob file.
    let t = Server::start("quota_bytes = 20000\n").await;
    let client = t.client();
    let usage = || async {
        let body: Value = client
            .get(t.url(&format!("/usage/{}", t.alice.uuid)))
            .header("authorization", &t.alice.header)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["used_bytes"].as_u64().unwrap()
    };
    let base = usage().await;
    let response = client
        .put(t.url("/shared/doc/big"))
        .header("authorization", &t.alice.header)
        .body(vec![1u8; 800])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let rev: Value = response.json().await.unwrap();
    assert_eq!(
        usage().await,
        base + 800 + soledad_server::blobs::ENTRY_OVERHEAD_BYTES
    );
    let response = client
        .put(t.url("/shared/doc/more"))
        .header("authorization", &t.alice.header)
        .body(vec![1u8; 12_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 507);
    // Deleting gives the bytes back.
    let response = client
        .delete(t.url(&format!(
            "/shared/doc/big?old_rev={}",
            rev["rev"].as_str().unwrap()
        )))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(usage().await, base);
}
