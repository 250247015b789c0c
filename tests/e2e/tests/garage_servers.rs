//! Two `soledad-server` processes over one Garage cluster serve one user:
//! two devices sync 1000 × 10 KB documents and a 100 MB blob, each through its
//! own server, while one server is SIGKILLed mid-sync (and restarted: it
//! holds no state) and a Garage node is SIGKILLed (and later restarted);
//! every sync and transfer completes after retries, nothing is lost or
//! duplicated, and a conflict made through the two servers reaches the
//! application.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use soledad_client::{KdfParams, SecretString, Soledad};
use soledad_server::TokenStore as _;
use soledad_server::garage::GarageBackend;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

// The cluster harness of the server's Garage suites (one copy of it).
#[path = "../../../crates/soledad-server/tests/garage/cluster.rs"]
mod cluster;
// Live sync and quota across the two servers.
#[path = "garage_servers/shared_state.rs"]
mod shared_state;

const DOCS: usize = 1000;
const DOC_BYTES: usize = 10 * 1024;
const BLOB_BYTES: usize = 100 << 20;

/// A `soledad-server` process with `backend = garage`.
struct ServerProcess {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl ServerProcess {
    async fn start(dir: &Path) -> ServerProcess {
        ServerProcess::start_with(dir, "").await
    }

    /// As [`start`](Self::start), with `extra` lines in the INI section.
    async fn start_with(dir: &Path, extra: &str) -> ServerProcess {
        let env = cluster::env();
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("server.conf");
        std::fs::write(
            &config,
            format!(
                "[soledad-server]\ndata_path = {}\nusers_address = 127.0.0.1:{port}\n\
                 services_address = 127.0.0.1:0\nbackend = garage\n\
                 garage_s3_endpoints = {}\ngarage_k2v_endpoints = {}\ngarage_bucket = {}\n\
                 garage_region = {}\ngarage_key_id = {}\ngarage_secret_key_file = {}\n{extra}\n",
                dir.join("data").display(),
                env.s3.join(","),
                env.k2v.join(","),
                env.bucket,
                env.region,
                env.key_id,
                env.secret_key_file.display(),
            ),
        )
        .unwrap();
        let mut server = ServerProcess {
            dir: dir.to_owned(),
            config,
            port,
            child: None,
        };
        server.serve().await;
        server
    }

    async fn serve(&mut self) {
        let child = Command::new(soledad_testkit::server_binary())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("data").join("tls").join("cert.pem")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn device(home: &Path, user: &str, server: &ServerProcess, token: &str) -> Soledad {
    std::fs::create_dir_all(home).unwrap();
    Soledad::builder(user, SecretString::from("passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join("local.db"))
        .server_url(server.url())
        .cert_file(server.cert())
        .auth_token(token)
        .with_blobs(true)
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap()
}

/// Syncs, retrying a few times (a request may meet a node being killed).
async fn sync(device: &Soledad) -> soledad_client::SyncReport {
    let mut last = None;
    for _ in 0..5 {
        match device.sync().await {
            Ok(report) => return report,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("sync kept failing: {last:?}");
}

async fn live_docs(device: &Soledad) -> usize {
    let (_, docs) = device.get_all_docs(false).await.unwrap();
    docs.len()
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[2]
        })
        .collect()
}

#[test]
fn two_servers_share_one_user_through_server_and_node_kills() {
    if !cluster::requested() {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let env = cluster::env();
            let tmp = tempfile::tempdir().unwrap();
            let mut nonce = [0u8; 6];
            getrandom::fill(&mut nonce).unwrap();
            let user = format!("e2e-{}", hex::encode(nonce));
            // The servers use no key prefix: the user's token goes there.
            let backend = GarageBackend::connect(cluster::config().with_key_prefix("")).unwrap();
            let token = backend.token_store().add(&user, None).await.unwrap();
            let mut server_a = ServerProcess::start(&tmp.path().join("a")).await;
            let server_b = ServerProcess::start(&tmp.path().join("b")).await;
            let one = device(&tmp.path().join("one"), &user, &server_a, token.expose()).await;
            // The second device shares the secrets file (no recovery needed).
            std::fs::create_dir_all(tmp.path().join("two")).unwrap();
            std::fs::copy(
                tmp.path().join("one/soledad.json"),
                tmp.path().join("two/soledad.json"),
            )
            .unwrap();
            let two = device(&tmp.path().join("two"), &user, &server_b, token.expose()).await;

            let filler = "x".repeat(DOC_BYTES);
            for i in 0..DOCS {
                one.create_doc(
                    &json!({"n": i, "filler": filler}),
                    Some(&format!("doc-{i}")),
                )
                .await
                .unwrap();
            }
            // Server A dies mid-sync; it restarts on the same port (stateless)
            // and the retried sync completes.
            let first = {
                let syncing = one.sync();
                tokio::pin!(syncing);
                tokio::select! {
                    result = &mut syncing => Some(result),
                    () = tokio::time::sleep(Duration::from_millis(300)) => None,
                }
            };
            // (On a fast machine the sync may already be done: the kill then
            // hits an idle server, and the retried sync has nothing to send.)
            eprintln!("server A killed mid-sync: {}", first.is_none());
            server_a.kill();
            server_a.serve().await;
            // A Garage node dies too, the one every client tried first:
            // everything fails over to the other two.
            let killed = env.dir.is_some();
            if killed {
                cluster::node("kill-node", 1);
            }
            sync(&one).await;
            let got = sync(&two).await;
            assert_eq!(got.received, DOCS as u64, "{got:?}");
            assert_eq!(live_docs(&two).await, DOCS);

            // A blob up through one server, down through the other.
            let data = pattern(BLOB_BYTES);
            two.blobmanager()
                .unwrap()
                .put(
                    "big-blob",
                    data.as_slice(),
                    data.len() as u64,
                    "default",
                    false,
                )
                .await
                .unwrap();
            let mut reader = one
                .blobmanager()
                .unwrap()
                .get("big-blob", "default")
                .await
                .unwrap()
                .expect("the blob reached the other server");
            let mut back = Vec::new();
            reader.read_to_end(&mut back).await.unwrap();
            assert_eq!(back.len(), data.len());
            assert_eq!(Sha256::digest(&back), Sha256::digest(&data));

            // Concurrent edits through the two servers: a conflict for the
            // device that syncs second.
            let mut mine = one.get_doc("doc-0", false).await.unwrap().unwrap();
            mine.set_json(r#"{"edited":"one"}"#).unwrap();
            one.put_doc(&mut mine).await.unwrap();
            let mut theirs = two.get_doc("doc-0", false).await.unwrap().unwrap();
            theirs.set_json(r#"{"edited":"two"}"#).unwrap();
            two.put_doc(&mut theirs).await.unwrap();
            sync(&one).await;
            let report = sync(&two).await;
            assert_eq!(report.conflicts, 1, "{report:?}");
            assert!(!two.get_doc_conflicts("doc-0").await.unwrap().is_empty());

            // The node comes back; both devices converge, nothing duplicated.
            if killed {
                cluster::node("start-node", 1);
            }
            sync(&two).await;
            sync(&one).await;
            for device in [&one, &two] {
                let (_, docs) = device.get_all_docs(false).await.unwrap();
                let mut ids: Vec<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), DOCS, "every document once");
                assert_eq!(docs.len(), DOCS);
            }
            one.close().await.unwrap();
            two.close().await.unwrap();
        });
}
