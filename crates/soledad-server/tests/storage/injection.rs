//! A server built through `ServerBuilder` on the in-memory stores: started on
//! 127.0.0.1, reached over HTTPS, one request per store; the embedded stores
//! are never opened. A sync exchange runs on in-memory document stores.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use soledad_protocol::{
    DocFrame, ExchangeEnd, ExchangeRequestHeader, Frame, Receiver, Response, SYNC_CONTENT_TYPE,
    Step,
};
use soledad_server::blobs::{
    BlobBackend as _, BlobId, DOC_ENTRY_OVERHEAD_BYTES, Namespace, QuotaCounters as _, UserId,
};
use soledad_server::{
    Config, Server, SharedDocId, SharedStore as _, TokenStore as _, UserDocStores as _,
};

use crate::memory::{MemoryBlobs, MemoryDocStores, MemoryQuota, MemoryShared, MemoryTokens};

fn client_for(cert: &Path) -> reqwest::Client {
    // Err only means another test installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

fn auth(uuid: &str, token: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{uuid}:{token}")))
}

#[tokio::test]
async fn a_server_runs_on_in_memory_stores() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::loopback(dir.path().join("data"));
    let tokens = Arc::new(MemoryTokens::default());
    let shared = Arc::new(MemoryShared::default());
    let blobs = Arc::new(MemoryBlobs::new(1 << 20));
    let token = tokens.add("alice", None).await.unwrap();
    let server = Server::builder(config.clone())
        .token_store(tokens.clone())
        .shared_store(shared.clone())
        .blob_backend(blobs.clone())
        .start()
        .await
        .unwrap();
    assert!(server.users_addr().ip().is_loopback());
    let client = client_for(server.cert_path());
    let url = |path: &str| format!("https://{}{path}", server.users_addr());
    let alice = auth("alice", token.expose());

    // Token store: the token the in-memory store issued is accepted, another
    // is refused.
    let wrong = client
        .get(url("/blobs/alice"))
        .header("authorization", auth("alice", "not-the-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // Shared store: a document written over HTTP is in the in-memory store.
    let put = client
        .put(url("/shared/doc/backup"))
        .header("authorization", &alice)
        .header("content-type", "application/octet-stream")
        .body("key backup")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let owner = UserId::parse("alice").unwrap();
    let doc = shared
        .get(&owner, &SharedDocId::parse("backup").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.content, b"key backup");

    // Blobs: an upload over HTTP lands in the in-memory backend, and reads
    // back over HTTP.
    let put = client
        .put(url("/blobs/alice/blob-1"))
        .header("authorization", &alice)
        .body(vec![7u8; 3000])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let read = blobs
        .get(
            &owner,
            &Namespace::default(),
            &BlobId::parse("blob-1").unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(read.total_size, 3000);
    let listed = client
        .get(url("/blobs/alice"))
        .header("authorization", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let ids: Vec<String> = listed.json().await.unwrap();
    assert_eq!(ids, ["blob-1"]);

    // None of the embedded stores was created.
    assert!(!config.token_store_path().exists());
    assert!(!config.shared_store_path().exists());
    assert!(!config.blobs_dir().exists());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_sync_exchange_runs_on_in_memory_document_stores() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::loopback(dir.path().join("data"));
    let tokens = Arc::new(MemoryTokens::default());
    let docs = Arc::new(MemoryDocStores::default());
    let quota = Arc::new(MemoryQuota::default());
    let token = tokens.add("alice", None).await.unwrap();
    let server = Server::builder(config.clone())
        .token_store(tokens.clone())
        .user_doc_stores(docs.clone())
        .quota_ledger(quota.clone())
        .start()
        .await
        .unwrap();
    let client = client_for(server.cert_path());
    let url = format!(
        "https://{}/user-alice/sync-from/device-1",
        server.users_addr()
    );

    let mut body = Vec::new();
    Frame::RequestHeader(ExchangeRequestHeader {
        last_known_generation: 0,
        last_known_trans_id: String::new(),
        ensure: true,
    })
    .encode(&mut body)
    .unwrap();
    for (i, id) in ["a", "b"].iter().enumerate() {
        let generation = i as u64 + 1;
        Frame::Doc(DocFrame {
            id: (*id).to_owned(),
            rev: "device-1:1".to_owned(),
            generation,
            trans_id: format!("T-{generation}"),
            payload: format!("sealed {id}").into_bytes().into(),
        })
        .encode(&mut body)
        .unwrap();
    }
    Frame::End(ExchangeEnd {
        generation: 2,
        transaction_id: "T-2".to_owned(),
    })
    .encode(&mut body)
    .unwrap();
    let response = client
        .post(&url)
        .header("authorization", auth("alice", token.expose()))
        .header("content-type", SYNC_CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    let mut receiver = Receiver::<Response>::new();
    receiver.push(&bytes);
    let Ok(Step::Header(header)) = receiver.poll() else {
        panic!("no response header");
    };
    assert_eq!(header.target_replica_uid, "memory-alice");
    assert_eq!(header.target_generation, 2);
    assert_eq!(
        header.document_count, 0,
        "what the device sent is not sent back"
    );
    assert!(matches!(receiver.poll(), Ok(Step::End { last, .. }) if last.is_empty()));

    // The documents and the device's position are in the in-memory stores.
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(docs.payload(&alice, "a").unwrap(), b"sealed a");
    assert_eq!(docs.payload(&alice, "b").unwrap(), b"sealed b");
    let info = docs.sync_info(&alice, "device-1").await.unwrap();
    assert_eq!(info.source_replica_generation, 2);
    // They were charged to the injected quota counters: each document its id,
    // revision and payload plus the per-entry overhead.
    let each =
        ("a".len() + "device-1:1".len() + "sealed a".len()) as u64 + DOC_ENTRY_OVERHEAD_BYTES;
    assert!(quota.used(&alice) >= 2 * each, "{}", quota.used(&alice));
    // The embedded document stores were never created.
    assert!(!config.user_dbs_dir().exists());
    server.shutdown().await.unwrap();
}

/// A document frame whose id or revision does not parse is refused where it
/// enters (the exchange) with a typed error: no store implementation sees it.
#[tokio::test]
async fn a_frame_with_a_bad_id_or_revision_never_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::loopback(dir.path().join("data"));
    let tokens = Arc::new(MemoryTokens::default());
    let docs = Arc::new(MemoryDocStores::default());
    let token = tokens.add("alice", None).await.unwrap();
    let server = Server::builder(config.clone())
        .token_store(tokens.clone())
        .user_doc_stores(docs.clone())
        .start()
        .await
        .unwrap();
    let client = client_for(server.cert_path());
    let url = format!(
        "https://{}/user-alice/sync-from/device-1",
        server.users_addr()
    );
    for (id, rev, kind) in [
        ("a b", "device-1:1", "invalid_doc_id"),
        ("a%2Fb", "device-1:1|a:0", "invalid_revision"),
    ] {
        let mut body = Vec::new();
        Frame::RequestHeader(ExchangeRequestHeader {
            last_known_generation: 0,
            last_known_trans_id: String::new(),
            ensure: true,
        })
        .encode(&mut body)
        .unwrap();
        Frame::Doc(DocFrame {
            id: id.to_owned(),
            rev: rev.to_owned(),
            generation: 1,
            trans_id: "T-1".to_owned(),
            payload: b"sealed".to_vec().into(),
        })
        .encode(&mut body)
        .unwrap();
        Frame::End(ExchangeEnd {
            generation: 1,
            transaction_id: "T-1".to_owned(),
        })
        .encode(&mut body)
        .unwrap();
        let response = client
            .post(&url)
            .header("authorization", auth("alice", token.expose()))
            .header("content-type", SYNC_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{id} {rev}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"], kind);
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(docs.payload(&alice, id), None);
        let info = docs.sync_info(&alice, "device-1").await.unwrap();
        assert_eq!(info.target_replica_generation, 0, "nothing stored");
    }
    server.shutdown().await.unwrap();
}
