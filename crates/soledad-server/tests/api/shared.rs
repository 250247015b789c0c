//! The shared store of key backups: revisions, conflicts, ids, size cap.

use reqwest::StatusCode;
use serde_json::Value;

use crate::util::TestServer;

const REV: &str = soledad_protocol::REV_HEADER;

async fn put(
    t: &TestServer,
    id: &str,
    old_rev: Option<&str>,
    body: &'static str,
) -> (StatusCode, Value) {
    let mut url = t.url(&format!("/shared/doc/{id}"));
    if let Some(rev) = old_rev {
        url = format!("{url}?old_rev={rev}");
    }
    let response = t
        .client
        .put(url)
        .header("authorization", &t.alice.header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn revisions_and_conflicts() {
    let t = TestServer::start().await;
    let (status, body) = put(&t, "backup-1", None, r#"{"secret": "v1"}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    let rev1 = body["rev"].as_str().unwrap().to_owned();

    // Another user does not see it (issue 8: documents belong to their owner).
    let response = t
        .client
        .get(t.url("/shared/doc/backup-1"))
        .header("authorization", &t.bob.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The owner reads it back: content as given.
    let response = t
        .client
        .get(t.url("/shared/doc/backup-1"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[REV], rev1.as_str());
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"secret": "v1"}"#);

    // Existing doc: a missing or stale rev conflicts.
    let (status, body) = put(&t, "backup-1", None, "{}").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "revision_conflict");
    assert_eq!(
        put(&t, "backup-1", Some("1-0000"), "{}").await.0,
        StatusCode::CONFLICT
    );

    let (status, body) = put(&t, "backup-1", Some(&rev1), r#"{"secret": "v2"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let rev2 = body["rev"].as_str().unwrap().to_owned();
    assert_ne!(rev1, rev2);
    // The old rev is stale now.
    assert_eq!(
        put(&t, "backup-1", Some(&rev1), "{}").await.0,
        StatusCode::CONFLICT
    );
    let response = t
        .client
        .get(t.url("/shared/doc/backup-1"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[REV], rev2.as_str());
    assert_eq!(response.text().await.unwrap(), r#"{"secret": "v2"}"#);

    // A rev given for an absent document conflicts too.
    assert_eq!(
        put(&t, "absent", Some(&rev2), "{}").await.0,
        StatusCode::CONFLICT
    );

    // Delete needs the current rev.
    let delete = |rev: Option<&str>| {
        let url = match rev {
            Some(rev) => t.url(&format!("/shared/doc/backup-1?old_rev={rev}")),
            None => t.url("/shared/doc/backup-1"),
        };
        t.client
            .delete(url)
            .header("authorization", &t.alice.header)
            .send()
    };
    assert_eq!(delete(None).await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(
        delete(Some(&rev1)).await.unwrap().status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        delete(Some(&rev2)).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(Some(&rev2)).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let response = t
        .client
        .get(t.url("/shared/doc/backup-1"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");

    // Created afresh after deletion.
    assert_eq!(put(&t, "backup-1", None, "{}").await.0, StatusCode::CREATED);
    t.shutdown().await;
}

#[tokio::test]
async fn ids_are_validated_and_size_is_capped() {
    let t = TestServer::start_with(|c| c.shared_doc_max_bytes = 1024).await;
    for bad in ["a%20b", "a%2Fb", "%C3%A9", "..%2F..%2Fetc"] {
        let (status, body) = put(&t, bad, None, "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_doc_id");
    }
    // `%` itself is allowed (u1db's rule): `%25` decodes to it.
    assert_eq!(
        put(&t, "%252F%252Ffoo", None, "{}").await.0,
        StatusCode::CREATED
    );

    let big = "x".repeat(1025);
    let response = t
        .client
        .put(t.url("/shared/doc/big"))
        .header("authorization", &t.alice.header)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let exact = "x".repeat(1024);
    let response = t
        .client
        .put(t.url("/shared/doc/big"))
        .header("authorization", &t.alice.header)
        .body(exact)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    t.shutdown().await;
}
