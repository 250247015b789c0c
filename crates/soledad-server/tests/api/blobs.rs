//! The blobs API: every feature of the seed's table, plus usage.

use reqwest::StatusCode;
use serde_json::Value;
use soledad_server::blobs::ENTRY_OVERHEAD_BYTES;

use crate::util::{Creds, TestServer};

pub struct Blobs<'a> {
    pub t: &'a TestServer,
    pub who: &'a Creds,
}

impl Blobs<'_> {
    pub fn url(&self, rest: &str) -> String {
        self.t.url(&format!("/blobs/{}{rest}", self.who.uuid))
    }

    pub async fn put(&self, id: &str, query: &str, body: Vec<u8>) -> StatusCode {
        self.t
            .client
            .put(self.url(&format!("/{id}{query}")))
            .header("authorization", &self.who.header)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn get(&self, id: &str, query: &str, range: Option<&str>) -> reqwest::Response {
        let mut request = self
            .t
            .client
            .get(self.url(&format!("/{id}{query}")))
            .header("authorization", &self.who.header);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send().await.unwrap()
    }

    pub async fn flags(&self, id: &str, query: &str, body: &str) -> StatusCode {
        self.t
            .client
            .post(self.url(&format!("/{id}{query}")))
            .header("authorization", &self.who.header)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn delete(&self, id: &str, query: &str) -> StatusCode {
        self.t
            .client
            .delete(self.url(&format!("/{id}{query}")))
            .header("authorization", &self.who.header)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn list(&self, query: &str) -> (StatusCode, Value) {
        let response = self
            .t
            .client
            .get(self.url(query))
            .header("authorization", &self.who.header)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    pub async fn ids(&self, query: &str) -> Vec<String> {
        let (status, body) = self.list(query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn usage(&self) -> (u64, u64) {
        let body: Value = self
            .t
            .client
            .get(self.t.url(&format!("/usage/{}", self.who.uuid)))
            .header("authorization", &self.who.header)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            body["used_bytes"].as_u64().unwrap(),
            body["limit_bytes"].as_u64().unwrap(),
        )
    }
}

#[tokio::test]
async fn listing_filters_order_count_and_deleted() {
    let t = TestServer::start().await;
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    // Upload order differs from id order so the date order is visible.
    for id in ["c", "a", "b"] {
        assert_eq!(
            b.put(id, "", id.repeat(10).into_bytes()).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        b.put("other", "?namespace=mail", b"x".to_vec()).await,
        StatusCode::OK
    );

    let mut all = b.ids("").await;
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    assert_eq!(b.ids("?order_by=date").await, ["c", "a", "b"]);
    assert_eq!(b.ids("?order_by=%2Bdate").await, ["c", "a", "b"]);
    assert_eq!(b.ids("?order_by=-date").await, ["b", "a", "c"]);
    assert_eq!(b.ids("?namespace=mail").await, ["other"]);
    assert_eq!(
        b.list("?only_count=true").await.1,
        serde_json::json!({"count": 3})
    );
    assert_eq!(
        b.list("?only_count=true&namespace=mail").await.1,
        serde_json::json!({"count": 1})
    );

    assert_eq!(
        b.flags("a", "", r#"["PENDING"]"#).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        b.flags("b", "", r#"["PROCESSED", "FAILED"]"#).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(b.ids("?filter_flag=PENDING").await, ["a"]);
    assert_eq!(b.ids("?filter_flag=FAILED").await, ["b"]);
    assert!(b.ids("?filter_flag=PROCESSING").await.is_empty());
    assert_eq!(
        b.list("?filter_flag=PROCESSED&only_count=1").await.1,
        serde_json::json!({"count": 1})
    );

    assert_eq!(b.delete("c", "").await, StatusCode::NO_CONTENT);
    let mut live = b.ids("").await;
    live.sort();
    assert_eq!(live, ["a", "b"]);
    assert_eq!(b.ids("?deleted=true").await, ["c"]);
    assert!(b.ids("?deleted=true&namespace=mail").await.is_empty());

    // Bad arguments.
    let (status, body) = b.list("?filter_flag=DONE").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(body["error"], "invalid_flag");
    assert_eq!(b.list("?order_by=size").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(b.list("?namespace=a.b").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(b.list("?deleted=perhaps").await.0, StatusCode::BAD_REQUEST);
    t.shutdown().await;
}

#[tokio::test]
async fn get_whole_and_ranges() {
    let t = TestServer::start().await;
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    assert_eq!(b.put("r", "", data.clone()).await, StatusCode::OK);

    let response = b.get("r", "", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "1000");
    assert_eq!(response.bytes().await.unwrap().as_ref(), data.as_slice());

    let response = b.get("r", "", Some("bytes=2-5")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["content-range"], "bytes 2-5/1000");
    assert_eq!(response.bytes().await.unwrap().as_ref(), &data[2..6]);

    let response = b.get("r", "", Some("bytes=990-")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["content-range"], "bytes 990-999/1000");
    assert_eq!(response.bytes().await.unwrap().as_ref(), &data[990..]);

    let response = b.get("r", "", Some("bytes=-3")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &data[997..]);

    let response = b.get("r", "", Some("bytes=1000-")).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()["content-range"], "bytes */1000");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "range_not_satisfiable");

    // Not found: other id, other namespace.
    assert_eq!(
        b.get("nope", "", None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("r", "?namespace=mail", None).await.status(),
        StatusCode::NOT_FOUND
    );
    t.shutdown().await;
}

#[tokio::test]
async fn duplicate_put_flags_and_delete() {
    let t = TestServer::start().await;
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(b.put("x", "", b"first".to_vec()).await, StatusCode::OK);
    assert_eq!(
        b.put("x", "", b"second".to_vec()).await,
        StatusCode::CONFLICT
    );
    assert_eq!(b.get("x", "", None).await.text().await.unwrap(), "first");
    // Same id in another namespace is another blob.
    assert_eq!(
        b.put("x", "?namespace=n2", b"second".to_vec()).await,
        StatusCode::OK
    );

    for flag in ["PENDING", "PROCESSING", "PROCESSED", "FAILED"] {
        assert_eq!(
            b.flags("x", "", &format!("[\"{flag}\"]")).await,
            StatusCode::NO_CONTENT
        );
        let flags: Vec<String> = b
            .get("x", "?only_flags=true", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(flags, [flag]);
    }
    assert_eq!(
        b.flags("x", "", r#"["DONE"]"#).await,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(
        b.flags("x", "", r#"["pending"]"#).await,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(
        b.flags("x", "", r#"["PENDING", "NOPE"]"#).await,
        StatusCode::NOT_ACCEPTABLE
    );
    // Refused flag sets leave the flags unchanged.
    let flags: Vec<String> = b
        .get("x", "?only_flags=true", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flags, ["FAILED"]);
    assert_eq!(b.flags("x", "", "PENDING").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        b.flags("nope", "", r#"["PENDING"]"#).await,
        StatusCode::NOT_FOUND
    );

    assert_eq!(b.delete("x", "").await, StatusCode::NO_CONTENT);
    assert_eq!(b.delete("x", "").await, StatusCode::NOT_FOUND);
    assert_eq!(b.get("x", "", None).await.status(), StatusCode::NOT_FOUND);
    // The other namespace's blob is still there.
    assert_eq!(
        b.get("x", "?namespace=n2", None)
            .await
            .text()
            .await
            .unwrap(),
        "second"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn usage_tracks_puts_and_deletes() {
    let t = TestServer::start_with(|c| c.quota_bytes = 10_000_000).await;
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(b.usage().await, (0, 10_000_000));
    // Bigger than any default request body limit: proves the streaming path.
    let big = vec![7u8; 3 * 1024 * 1024];
    assert_eq!(b.put("big", "", big.clone()).await, StatusCode::OK);
    assert_eq!(b.put("small", "", vec![1u8; 100]).await, StatusCode::OK);
    // Each blob is a content and a flags file, each costing an entry.
    assert_eq!(
        b.usage().await.0,
        big.len() as u64 + 100 + 4 * ENTRY_OVERHEAD_BYTES
    );
    let got = b.get("big", "", None).await.bytes().await.unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got.iter().all(|&x| x == 7));
    assert_eq!(b.delete("big", "").await, StatusCode::NO_CONTENT);
    // The deleted blob's tombstone costs an entry.
    assert_eq!(b.usage().await.0, 100 + 3 * ENTRY_OVERHEAD_BYTES);
    // Bob's usage is his own.
    let bob = Blobs { t: &t, who: &t.bob };
    assert_eq!(bob.usage().await.0, 0);
    t.shutdown().await;
}
