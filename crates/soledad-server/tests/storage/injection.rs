//! A server built through `ServerBuilder` on the in-memory stores: started on
//! 127.0.0.1, reached over HTTPS, one request per store; the embedded stores
//! are never opened.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use soledad_server::blobs::{BlobBackend as _, BlobId, Namespace, UserId};
use soledad_server::{Config, Server, SharedDocId, SharedStore as _, TokenStore as _};

use crate::memory::{MemoryBlobs, MemoryShared, MemoryTokens};

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
