#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The Garage backend side by side with the embedded default, with the real
//! server binary: sync of 1000 × 10 KB documents A → server → B, and a
//! 100 MB blob PUT by A and GET by B (through the client library, so the
//! client's encryption and local store are in both figures).
//!
//! Run: `cargo bench -p soledad-e2e --bench garage` (a 3-node cluster is
//! started with `scripts/garage-cluster`, or the one the `GARAGE_*`
//! environment names is used). Prints medians of `RUNS` runs and the ratio
//! Garage / embedded.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use soledad_client::{KdfParams, SecretString, Soledad};
use tokio::io::AsyncReadExt as _;

const RUNS: usize = 3;
const DOCS: usize = 1000;
const DOC_BYTES: usize = 10 * 1024;
const BLOB_BYTES: usize = 100 << 20;

struct Cluster {
    vars: Vec<(String, String)>,
}

impl Cluster {
    fn get(&self, name: &str) -> String {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    }
}

fn cluster() -> Cluster {
    if std::env::var("GARAGE_K2V_ENDPOINTS").is_ok() {
        return Cluster {
            vars: std::env::vars().collect(),
        };
    }
    let dir = std::env::temp_dir().join(format!("soledad-garage-bench-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage-cluster");
    let out = Command::new(script)
        .arg("start")
        .arg(&dir)
        .args(["--watch", &std::process::id().to_string(), "--remove"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Cluster {
        vars: String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

struct ServerProcess {
    child: Child,
    url: String,
    cert: std::path::PathBuf,
    token: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path, garage: Option<&Cluster>, user: &str) -> ServerProcess {
    std::fs::create_dir_all(dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut text = format!(
        "[soledad-server]\ndata_path = {}\nusers_address = 127.0.0.1:{port}\n\
         services_address = 127.0.0.1:0\nquota_bytes = 10000000000\n",
        dir.join("data").display()
    );
    if let Some(c) = garage {
        text.push_str(&format!(
            "backend = garage\ngarage_s3_endpoints = {}\ngarage_k2v_endpoints = {}\n\
             garage_bucket = {}\ngarage_region = {}\ngarage_key_id = {}\n\
             garage_secret_key_file = {}\n",
            c.get("GARAGE_S3_ENDPOINTS"),
            c.get("GARAGE_K2V_ENDPOINTS"),
            c.get("GARAGE_BUCKET"),
            c.get("GARAGE_REGION"),
            c.get("GARAGE_KEY_ID"),
            c.get("GARAGE_SECRET_KEY_FILE"),
        ));
    }
    let config = dir.join("server.conf");
    std::fs::write(&config, text).unwrap();
    let bin = soledad_testkit::server_binary();
    let out = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["user", "add", user])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    ServerProcess {
        child,
        url: format!("https://127.0.0.1:{port}"),
        cert: dir.join("data").join("tls").join("cert.pem"),
        token,
    }
}

async fn device(home: &Path, user: &str, server: &ServerProcess) -> Soledad {
    std::fs::create_dir_all(home).unwrap();
    Soledad::builder(user, SecretString::from("bench passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join("local.db"))
        .server_url(&server.url)
        .cert_file(&server.cert)
        .auth_token(&server.token)
        .with_blobs(true)
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap()
}

fn filler(seed: usize, size: usize) -> String {
    let mut state = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut text = String::with_capacity(size + 16);
    text.push_str("{\"body\":\"");
    while text.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push(char::from(
            alphabet[(state % alphabet.len() as u64) as usize],
        ));
    }
    text.push_str("\"}");
    text
}

/// (upload ms, download ms, blob put ms, blob get ms) of one run.
async fn run(garage: Option<&Cluster>, run: usize) -> [f64; 4] {
    let dir = tempfile::tempdir().unwrap();
    let user = format!("bench-{}-{run}-{}", std::process::id(), garage.is_some());
    let server = start_server(&dir.path().join("server"), garage, &user);
    let a = device(&dir.path().join("a"), &user, &server).await;
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::copy(
        dir.path().join("a/soledad.json"),
        dir.path().join("b/soledad.json"),
    )
    .unwrap();
    let b = device(&dir.path().join("b"), &user, &server).await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    for i in 0..DOCS {
        a.create_doc_from_json(&filler(i, DOC_BYTES), Some(&format!("doc-{i:06}")))
            .await
            .unwrap();
    }
    let start = Instant::now();
    let up = a.sync().await.unwrap();
    let upload = start.elapsed();
    let start = Instant::now();
    let down = b.sync().await.unwrap();
    let download = start.elapsed();
    assert_eq!((up.sent as usize, down.received as usize), (DOCS, DOCS));

    let data = vec![0x5au8; BLOB_BYTES];
    let start = Instant::now();
    a.blobmanager()
        .unwrap()
        .put(
            "bench-blob",
            data.as_slice(),
            data.len() as u64,
            "default",
            false,
        )
        .await
        .unwrap();
    let put = start.elapsed();
    let start = Instant::now();
    let mut reader = b
        .blobmanager()
        .unwrap()
        .get("bench-blob", "default")
        .await
        .unwrap()
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let get = start.elapsed();
    assert_eq!(total, BLOB_BYTES);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    [ms(upload), ms(download), ms(put), ms(get)]
}

fn median(rows: &[[f64; 4]], i: usize) -> f64 {
    let mut col: Vec<f64> = rows.iter().map(|r| r[i]).collect();
    col.sort_by(f64::total_cmp);
    col[col.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let garage = cluster();
    let mut results = Vec::new();
    for (name, cluster) in [("embedded", None), ("garage", Some(&garage))] {
        let rows: Vec<[f64; 4]> = (0..RUNS).map(|i| rt.block_on(run(cluster, i))).collect();
        let row: Vec<f64> = (0..4).map(|i| median(&rows, i)).collect();
        results.push((name, row));
    }
    println!("median of {RUNS} runs, ms (client library, server binary, loopback)");
    println!(
        "{:<10} {:>16} {:>18} {:>16} {:>16}",
        "backend", "1000x10KB up", "1000x10KB down", "100 MB blob PUT", "100 MB blob GET"
    );
    for (name, row) in &results {
        println!(
            "{:<10} {:>16.0} {:>18.0} {:>16.0} {:>16.0}",
            name, row[0], row[1], row[2], row[3]
        );
    }
    let (embedded, garage) = (&results[0].1, &results[1].1);
    println!(
        "{:<10} {:>15.1}x {:>17.1}x {:>15.1}x {:>15.1}x",
        "ratio",
        garage[0] / embedded[0],
        garage[1] / embedded[1],
        garage[2] / embedded[2],
        garage[3] / embedded[3]
    );
}
