#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Document sync A → server → B, DESIGN §10 scenarios, with the real server binary.
//!
//! Run: `cargo bench -p soledad-e2e --bench sync`
//!
//! Each run is a fresh process (this binary re-executed) against a fresh server
//! process, so the peak RSS of client and server belong to that scenario alone.
//! Prints medians over `RUNS` runs, and the raw cost of the same bytes (seal twice +
//! one plain SQLite write each side) measured in the same process for the ratio.
//!
//! Durable acknowledgements (issue 8): the server's user stores commit sync batches
//! in order (`synchronous=NORMAL`) and make the last transaction before each success
//! response durable (`FULL`, one WAL fsync that covers every earlier batch); token and
//! shared stores are `FULL`. Measured 2026-11-30 on the 2-core dev VM while other
//! builds ran (load average 3-5), before/after runs interleaved, medians of 5, ms:
//!
//! | scenario | before: up / down / total | after: up / down / total | server RSS MB before / after |
//! |---|---|---|---|
//! | 1000 x 10 KB | 76-83 / 108-119 / 184-202 | 117-124 / 111-115 / 227-239 | 28-30 / 27-28 |
//! | 100 x 100 KB | 83-108 / 104-109 / 188-217 | 90-118 / 92-112 / 182-230 | 38 / 32 |
//! | 10 x 1 MB | 81-101 / 111-114 / 193-215 | 79-86 / 85-105 / 164-191 | 41-42 / 34 |
//!
//! The 1000 x 10 KB upload costs ~40 ms more: the durable commit, the stored-size
//! count kept per document write (true quota), and measuring the user's usage once
//! per process. A `FULL` commit of every batch instead cost a further ~45-70 ms
//! here (4 x 250 x 10 KB + 3 small commits: 19 ms with NORMAL, 64-88 ms with FULL).

#[path = "../common/device.rs"]
mod device;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use soledad_client::Soledad;
use soledad_testkit::ServerProcess;

const RUNS: usize = 5;
const SCENARIOS: &[(&str, usize, usize)] = &[
    ("1000 x 10 KB", 1000, 10 * 1024),
    ("100 x 100 KB", 100, 100 * 1024),
    ("20 x 500 KB", 20, 500 * 1024),
    ("10 x 1 MB", 10, 1024 * 1024),
];
const UUID: &str = "bench-user";
const SCENARIO_VAR: &str = "SOLEDAD_SYNC_BENCH_SCENARIO";

fn main() {
    if let Ok(index) = std::env::var(SCENARIO_VAR) {
        let (_, count, size) = SCENARIOS[index.parse::<usize>().unwrap()];
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(run(count, size));
        println!(
            "RESULT {} {} {} {} {}",
            result.0, result.1, result.2, result.3, result.4
        );
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "sync A -> server -> B, median of {RUNS} runs (fresh client and server process each run)"
    );
    println!(
        "{:<14} {:>10} {:>11} {:>10} {:>9} {:>13} {:>13}",
        "scenario",
        "upload ms",
        "download ms",
        "total ms",
        "raw ms",
        "client RSS MB",
        "server RSS MB"
    );
    let me = std::env::current_exe().unwrap();
    for (index, (name, _, _)) in SCENARIOS.iter().enumerate() {
        let mut rows: Vec<[f64; 5]> = Vec::new();
        for _ in 0..RUNS {
            let out = Command::new(&me)
                .env(SCENARIO_VAR, index.to_string())
                .stderr(Stdio::inherit())
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("RESULT "))
                .unwrap_or_else(|| panic!("no result: {text}"));
            let v: Vec<f64> = line[7..].split(' ').map(|x| x.parse().unwrap()).collect();
            rows.push([v[0], v[1], v[2], v[3], v[4]]);
        }
        let median = |i: usize| {
            let mut col: Vec<f64> = rows.iter().map(|r| r[i]).collect();
            col.sort_by(f64::total_cmp);
            col[col.len() / 2]
        };
        let (up, down, raw) = (median(0), median(1), median(2));
        println!(
            "{:<14} {:>10.1} {:>11.1} {:>10.1} {:>9.1} {:>13.1} {:>13.1}   (total/raw {:.1}x)",
            name,
            up,
            down,
            up + down,
            raw,
            median(3) / 1024.0,
            median(4) / 1024.0,
            (up + down) / raw
        );
    }
}

/// Returns (upload ms, download ms, raw ms, client peak RSS KiB, server peak RSS KiB).
async fn run(count: usize, size: usize) -> (f64, f64, f64, u64, u64) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ServerProcess::builder()
        .option("quota_bytes", 10_000_000_000u64)
        .user(UUID)
        .start();
    let dir = server.dir();
    let token = server.token(UUID);
    let cert = server.cert();
    let url = server.url();
    let a = device(&dir.join("a"), &url, &cert, token).await;
    let b = device(&dir.join("b"), &url, &cert, token).await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();

    let bodies: Vec<String> = (0..count).map(|i| filler(i, size)).collect();
    for (i, body) in bodies.iter().enumerate() {
        a.create_doc_from_json(body, Some(&format!("doc-{i:06}")))
            .await
            .unwrap();
    }
    let start = Instant::now();
    let up = a.sync().await.unwrap();
    let upload = start.elapsed();
    let start = Instant::now();
    let down = b.sync().await.unwrap();
    let download = start.elapsed();
    assert_eq!((up.sent as usize, down.received as usize), (count, count));

    let server_rss = peak_rss_kib(&format!("/proc/{}/status", server.pid().unwrap()));
    server.kill();
    let client_rss = peak_rss_kib("/proc/self/status");
    let raw = raw_cost(&bodies, dir);
    (ms(upload), ms(download), ms(raw), client_rss, server_rss)
}

/// Opens a device of `UUID` (its own directory) through `url`.
async fn device(home: &Path, url: &str, cert: &Path, token: &str) -> Soledad {
    device::open_device(UUID, home, url, cert, token).await
}

/// A JSON object of about `size` bytes of incompressible text.
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

/// The floor: seal every document (as the uploader does) and open it (as the
/// receiver does), and write the bytes once into a plain SQLite table per side
/// (WAL, 64 KiB pages as the store uses; no SQLCipher, no TLS, no sync logic).
fn raw_cost(bodies: &[String], dir: &Path) -> Duration {
    let keys = soledad_crypto::SyncKeys::new(&soledad_crypto::StorageSecret::generate().unwrap());
    let start = Instant::now();
    let mut sealed = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.iter().enumerate() {
        let id = format!("doc-{i:06}");
        sealed.push((
            keys.hidden_id(&id),
            keys.seal_for_server(&id, "r:1", Some(body)).unwrap(),
        ));
    }
    // Connections stay open until the clock stops: closing the last one
    // checkpoints the WAL, which the real stores do not pay per sync either.
    let mut open = Vec::new();
    for side in ["server", "client"] {
        let conn = rusqlite::Connection::open(dir.join(format!("raw-{side}.db"))).unwrap();
        conn.execute_batch("PRAGMA page_size=65536; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t (id TEXT PRIMARY KEY, v BLOB);")
            .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for (id, bytes) in &sealed {
            conn.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![id, bytes],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        open.push(conn);
    }
    for (hidden, bytes) in &sealed {
        keys.open_from_server(hidden, "r:1", bytes).unwrap();
    }
    let elapsed = start.elapsed();
    drop(open);
    elapsed
}

fn peak_rss_kib(status: &str) -> u64 {
    let text = std::fs::read_to_string(status).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
