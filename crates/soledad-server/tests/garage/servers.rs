//! Two servers over one Garage cluster serve one user: two devices sync
//! documents and a blob, each through its own server, while a Garage node is
//! killed and later restarted; nothing is lost or duplicated, and a conflict
//! made through the two servers reaches the application.

use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};
use soledad_client::{KdfParams, SecretString, Soledad};
use soledad_server::garage::GarageBackend;
use soledad_server::{Config, RunningServer, Server, StorageBackend, TokenStore as _};
use tokio::io::AsyncReadExt as _;

use crate::cluster;

const DOCS: usize = 200;
const DOC_BYTES: usize = 10 * 1024;
const BLOB_BYTES: usize = 20 << 20;

async fn start_server(dir: &Path) -> RunningServer {
    let env = cluster::env();
    let mut config = Config::loopback(dir);
    config.backend = StorageBackend::Garage;
    config.garage_s3_endpoints = env.s3.clone();
    config.garage_k2v_endpoints = env.k2v.clone();
    config.garage_bucket = Some(env.bucket.clone());
    config.garage_region = env.region.clone();
    config.garage_key_id = Some(env.key_id.clone());
    config.garage_secret_key_file = Some(env.secret_key_file.clone());
    Server::start(config).await.unwrap()
}

async fn device(home: &Path, user: &str, server: &RunningServer, token: &str) -> Soledad {
    std::fs::create_dir_all(home).unwrap();
    Soledad::builder(user, SecretString::from("passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join("local.db"))
        .server_url(format!("https://{}", server.users_addr()))
        .cert_file(server.cert_path())
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
fn two_servers_share_one_user_through_a_node_kill() {
    if !cluster::requested() {
        return;
    }
    soledad_server::conformance::block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let env = cluster::env();
        let tmp = tempfile::tempdir().unwrap();
        let mut nonce = [0u8; 6];
        getrandom::fill(&mut nonce).unwrap();
        let user = format!("e2e-{}", hex::encode(nonce));
        let backend = GarageBackend::connect(cluster::config()).unwrap();
        // The servers use no key prefix: the user's token goes there too.
        let unprefixed = GarageBackend::connect(cluster::config().with_key_prefix("")).unwrap();
        drop(backend);
        let token = unprefixed.token_store().add(&user, None).await.unwrap();
        let server_a = start_server(&tmp.path().join("a")).await;
        let server_b = start_server(&tmp.path().join("b")).await;
        let one = device(&tmp.path().join("one"), &user, &server_a, token.expose()).await;
        // The second device recovers nothing: it shares the secrets file.
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
        let sent = sync(&one).await;
        assert_eq!(sent.sent, DOCS as u64);

        // A Garage node dies: everything goes on through the other two.
        let killed = env.dir.is_some();
        if killed {
            cluster::node("kill-node", 3);
        }
        let got = sync(&two).await;
        assert_eq!(got.received, DOCS as u64);
        assert_eq!(live_docs(&two).await, DOCS);

        // A blob up through one server, down through the other.
        let data = pattern(BLOB_BYTES);
        let manager = one.blobmanager().unwrap();
        manager
            .put(
                "big-blob",
                data.as_slice(),
                data.len() as u64,
                "default",
                false,
            )
            .await
            .unwrap();
        let mut reader = two
            .blobmanager()
            .unwrap()
            .get("big-blob", "default")
            .await
            .unwrap()
            .expect("the blob reached the other server");
        let mut back = Vec::new();
        reader.read_to_end(&mut back).await.unwrap();
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
            cluster::node("start-node", 3);
        }
        sync(&two).await;
        sync(&one).await;
        assert_eq!(live_docs(&one).await, DOCS);
        assert_eq!(live_docs(&two).await, DOCS);
        let (_, docs) = one.get_all_docs(false).await.unwrap();
        let mut ids: Vec<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), DOCS);

        one.close().await.unwrap();
        two.close().await.unwrap();
        server_a.shutdown().await.unwrap();
        server_b.shutdown().await.unwrap();
    });
}
