//! Blob throughput and client memory (issue 11): a 1 GiB blob put → upload →
//! download on another device → get, and 1,000 × 10 KB blobs with the transfer
//! concurrency limit, next to raw AES-GCM (blob stream) and disk figures.
//!
//! `cargo bench -p soledad-e2e --bench blobs` (set `SOLEDAD_BENCH_BLOB_MIB` for
//! another size). The server runs as the real `soledad-server` binary in a child
//! process (soledad-testkit), so the peak RSS printed (`VmHWM` of
//! `/proc/self/status`) is the client's alone; it must stay under 64 MiB
//! whatever the blob size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use soledad_client::{BlobConfig, KdfParams, SecretString, Soledad};
use soledad_testkit::ServerProcess;
use tokio::io::AsyncReadExt as _;

const UUID: &str = "bench-user";
fn main() {
    let mib: u64 = std::env::var("SOLEDAD_BENCH_BLOB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let process = ServerProcess::builder().user(UUID).start();
    let server = Server {
        url: process.url(),
        cert: process.cert(),
        token: process.token(UUID).to_owned(),
    };
    let dir = tempfile::tempdir().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(&server, dir.path(), mib));
    process.kill();
}

struct Server {
    url: String,
    cert: PathBuf,
    token: String,
}

async fn open(server: Option<&Server>, home: &Path, cert: &Path, token: &str) -> Soledad {
    std::fs::create_dir_all(home).unwrap();
    let mut builder = Soledad::builder(UUID, SecretString::from("bench passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .blob_config(BlobConfig::default());
    if let Some(server) = server {
        builder = builder
            .server_url(&server.url)
            .cert_file(cert)
            .auth_token(token);
    }
    builder.open().await.unwrap()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn report(stage: &str, bytes: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{stage:<34} {:>8.2} s {:>9.1} MB/s   peak RSS {:>6.1} MiB",
        secs,
        bytes as f64 / secs / 1e6,
        peak_rss_mib()
    );
}

async fn run(server: &Server, dir: &Path, mib: u64) {
    let size = mib << 20;
    println!("blob of {mib} MiB; client peak RSS is this process's VmHWM");

    // Raw figures: the blob stream alone (zeros in, sink out) and the disk.
    let key = soledad_crypto::StorageSecret::generate()
        .unwrap()
        .blob_key();
    let start = Instant::now();
    soledad_crypto::encrypt_blob(
        &key,
        "raw",
        size,
        std::io::repeat(0x5a).take(size),
        std::io::sink(),
    )
    .unwrap();
    report("raw AES-GCM blob stream encrypt", size, start);
    let raw = dir.join("raw.bin");
    let start = Instant::now();
    {
        let mut file =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&raw).unwrap());
        std::io::copy(&mut std::io::repeat(0x5a).take(size), &mut file).unwrap();
        file.into_inner().unwrap().sync_all().unwrap();
    }
    report("raw disk write + fsync", size, start);
    let start = Instant::now();
    std::io::copy(
        &mut std::fs::File::open(&raw).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
    report("raw disk read (page cache)", size, start);
    std::fs::remove_file(&raw).unwrap();

    // Device A: bootstrap with the server, then put without one (local stage
    // only), then upload with it.
    let (home_a, home_b) = (dir.join("a"), dir.join("b"));
    open(Some(server), &home_a, &server.cert, &server.token)
        .await
        .close()
        .await
        .unwrap();
    let a = open(None, &home_a, &server.cert, &server.token).await;
    let start = Instant::now();
    a.blobmanager()
        .unwrap()
        .put("big", tokio::io::repeat(0x5a).take(size), size, "", false)
        .await
        .unwrap();
    report("put (encrypt to local store)", size, start);
    a.close().await.unwrap();
    let a = open(Some(server), &home_a, &server.cert, &server.token).await;
    let start = Instant::now();
    let sent = a.blobmanager().unwrap().send_missing("").await.unwrap();
    assert_eq!(sent.uploaded, ["big"]);
    report("upload (send_missing)", size, start);

    let b = open(Some(server), &home_b, &server.cert, &server.token).await;
    let start = Instant::now();
    let got = b.blobmanager().unwrap().fetch_missing("").await.unwrap();
    assert_eq!(got.downloaded, ["big"]);
    report("download on B (fetch + verify)", size, start);
    let start = Instant::now();
    let mut reader = b
        .blobmanager()
        .unwrap()
        .get("big", "")
        .await
        .unwrap()
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, size);
    report("get on B (verify + decrypt)", size, start);
    a.blobmanager().unwrap().delete("big", "").await.unwrap();
    b.blobmanager()
        .unwrap()
        .refresh_sync_status_from_server("")
        .await
        .unwrap();

    // 1,000 × 10 KB with the default limit of 3 concurrent transfers.
    let small = vec![0x42u8; 10_000];
    a.close().await.unwrap();
    let a = open(None, &home_a, &server.cert, &server.token).await;
    let start = Instant::now();
    for n in 0..1000 {
        a.blobmanager()
            .unwrap()
            .put(
                &format!("s{n:04}"),
                &small[..],
                small.len() as u64,
                "",
                false,
            )
            .await
            .unwrap();
    }
    report("1000 × 10 KB put (local)", 10_000_000, start);
    a.close().await.unwrap();
    let a = open(Some(server), &home_a, &server.cert, &server.token).await;
    let start = Instant::now();
    let sent = a.blobmanager().unwrap().send_missing("").await.unwrap();
    assert_eq!(sent.uploaded.len(), 1000);
    report("1000 × 10 KB upload (3 at a time)", 10_000_000, start);
    let start = Instant::now();
    let got = b.blobmanager().unwrap().fetch_missing("").await.unwrap();
    assert_eq!(got.downloaded.len(), 1000);
    report("1000 × 10 KB download (3 at a time)", 10_000_000, start);
    println!("final client peak RSS: {:.1} MiB", peak_rss_mib());
}
