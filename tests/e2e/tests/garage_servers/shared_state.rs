//! What the servers over one cluster share besides the stores: change
//! notifications (a device in live mode waiting on server A sees a write
//! uploaded through server B without calling `sync()`) and quota counts (a
//! user's quota holds across the servers).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::json;
use soledad_client::{LiveEvent, LiveOptions, Soledad};
use soledad_server::TokenStore as _;
use soledad_server::garage::GarageBackend;

use super::{ServerProcess, cluster, device, sync};

/// A new user of the cluster (the servers use no key prefix) and its token.
async fn new_user() -> (String, String) {
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).unwrap();
    let user = format!("e2e-{}", hex::encode(nonce));
    let backend = GarageBackend::connect(cluster::config().with_key_prefix("")).unwrap();
    let token = backend.token_store().add(&user, None).await.unwrap();
    (user, token.expose().to_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `device` until it holds `doc_id` with `content`, for at most `within`.
async fn arrives(device: &Soledad, doc_id: &str, content: &serde_json::Value, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(doc) = device.get_doc(doc_id, false).await.unwrap()
            && doc.value().unwrap().as_ref() == Some(content)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{doc_id} did not arrive within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_live_device_on_one_server_sees_a_write_through_the_other() {
    if !cluster::requested() {
        return;
    }
    runtime().block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tmp = tempfile::tempdir().unwrap();
        let (user, token) = new_user().await;
        // Waits last a minute, far longer than the test allows for a wake:
        // only a notification through the cluster brings the document in time.
        let long_waits = "live_wait_secs = 60";
        let server_a = ServerProcess::start_with(&tmp.path().join("a"), long_waits).await;
        let server_b = ServerProcess::start_with(&tmp.path().join("b"), long_waits).await;
        let one = device(&tmp.path().join("one"), &user, &server_a, &token).await;
        std::fs::create_dir_all(tmp.path().join("two")).unwrap();
        std::fs::copy(
            tmp.path().join("one/soledad.json"),
            tmp.path().join("two/soledad.json"),
        )
        .unwrap();
        let two = device(&tmp.path().join("two"), &user, &server_b, &token).await;

        let live = one
            .start_live_sync(LiveOptions::default().wait(Duration::from_secs(60)))
            .await
            .unwrap();
        let mut events = live.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("the live device connects")
                .unwrap();
            if matches!(event, LiveEvent::Connected) {
                break;
            }
        }
        // The first document may come with the live device's first sync;
        // the second can only come from a wake-up through the cluster.
        for n in 0..2 {
            let content = json!({ "n": n });
            let id = format!("through-b-{n}");
            two.create_doc(&content, Some(&id)).await.unwrap();
            sync(&two).await;
            arrives(&one, &id, &content, Duration::from_secs(20)).await;
        }
        live.stop().await;
        one.close().await.unwrap();
        two.close().await.unwrap();
    });
}

/// A raw client of one server's blobs API for `user`.
struct Blobs {
    http: reqwest::Client,
    url: String,
    user: String,
    authorization: String,
}

impl Blobs {
    fn new(server: &ServerProcess, user: &str, token: &str) -> Blobs {
        Blobs {
            http: client_for(&server.cert()),
            url: server.url(),
            user: user.to_owned(),
            authorization: format!("Token {}", STANDARD.encode(format!("{user}:{token}"))),
        }
    }

    async fn put(&self, id: &str, len: usize) -> StatusCode {
        self.http
            .put(format!("{}/blobs/{}/{id}", self.url, self.user))
            .header("authorization", &self.authorization)
            .body(vec![7u8; len])
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn used_bytes(&self) -> u64 {
        let response = self
            .http
            .get(format!("{}/usage/{}", self.url, self.user))
            .header("authorization", &self.authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        body["used_bytes"].as_u64().unwrap()
    }

    /// Polls the usage this server reports until it is `expected`.
    async fn usage_becomes(&self, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let used = self.used_bytes().await;
            if used == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "usage stays {used}, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn client_for(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // A refused upload (507 before its body is read) ends its connection: a
    // new connection for every request.
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// What a blob of `len` bytes is charged (content, flags and entry).
fn charge(len: usize) -> u64 {
    len as u64 + 2 * soledad_server::blobs::ENTRY_OVERHEAD_BYTES
}

#[test]
fn a_users_quota_holds_across_two_servers() {
    if !cluster::requested() {
        return;
    }
    runtime().block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tmp = tempfile::tempdir().unwrap();
        let (user, token) = new_user().await;
        let quota = "quota_bytes = 1000000";
        let server_a = ServerProcess::start_with(&tmp.path().join("a"), quota).await;
        let server_b = ServerProcess::start_with(&tmp.path().join("b"), quota).await;
        let (a, b) = (
            Blobs::new(&server_a, &user, &token),
            Blobs::new(&server_b, &user, &token),
        );
        assert!(a.put("first", 600_000).await.is_success());
        // Server B sees what A charged once A wrote it back and B re-read.
        b.usage_becomes(charge(600_000)).await;
        assert_eq!(
            b.put("too-big", 400_000).await,
            StatusCode::INSUFFICIENT_STORAGE,
            "B counts A's blob"
        );
        assert!(b.put("second", 300_000).await.is_success());
        let both = charge(600_000) + charge(300_000);
        a.usage_becomes(both).await;
        assert_eq!(
            a.put("third", 200_000).await,
            StatusCode::INSUFFICIENT_STORAGE,
            "A counts B's blob"
        );
        // A restarted server starts from the same counts.
        drop(server_a);
        let server_c = ServerProcess::start_with(&tmp.path().join("c"), quota).await;
        assert_eq!(
            Blobs::new(&server_c, &user, &token).used_bytes().await,
            both
        );
    });
}
