//! Time to create 1000 documents of 10 KB: one per transaction and all in one
//! batch, with SQLCipher on and off, at 4, 16 and 64 KiB pages, next to the
//! same inserts with bare rusqlite into a plain table (same pragmas).
//!
//! Run: `cargo bench -p soledad-store --bench create_docs` (prints medians).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use soledad_store::{Database, OpenOptions, StoreError};

const DOCS: usize = 1000;
const DOC_BYTES: usize = 10 * 1024;
const RUNS: usize = 7;
const KEY: [u8; 32] = [0x5a; 32];

fn payloads() -> Vec<String> {
    (0..DOCS)
        .map(|i| {
            let mut body = String::with_capacity(DOC_BYTES);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64);
            while body.len() < DOC_BYTES - 32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body.push_str(&format!("{x:016x}"));
            }
            format!("{{\"n\": {i}, \"body\": \"{body}\"}}")
        })
        .collect()
}

fn open_store(dir: &Path, encrypted: bool, page: u32) -> Database {
    let options = OpenOptions::new().danger_page_size_bytes(page);
    let path = dir.join("store.db");
    if encrypted {
        options.open_encrypted(path, &KEY).unwrap()
    } else {
        options.open_unencrypted(path).unwrap()
    }
}

fn open_bare(dir: &Path, encrypted: bool, page: u32) -> Connection {
    let conn = Connection::open(dir.join("bare.db")).unwrap();
    if encrypted {
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(KEY)))
            .unwrap();
        conn.execute_batch(&format!("PRAGMA cipher_page_size = {page};"))
            .unwrap();
    }
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .unwrap();
    conn.execute_batch(&format!("PRAGMA page_size = {page};"))
        .unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch("PRAGMA synchronous = NORMAL;").unwrap();
    conn.execute_batch("CREATE TABLE docs (id TEXT PRIMARY KEY, content TEXT)")
        .unwrap();
    conn
}

#[derive(Clone, Copy)]
enum Scenario {
    StorePerTransaction,
    StoreBatch,
    BarePerTransaction,
    BareBatch,
}

fn run(scenario: Scenario, encrypted: bool, page: u32, docs: &[String]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    match scenario {
        Scenario::StorePerTransaction => {
            let mut db = open_store(dir.path(), encrypted, page);
            let start = Instant::now();
            for json in docs {
                db.create_doc_from_json(json, None).unwrap();
            }
            let elapsed = start.elapsed();
            db.close().unwrap();
            elapsed
        }
        Scenario::StoreBatch => {
            let mut db = open_store(dir.path(), encrypted, page);
            let start = Instant::now();
            db.batch(|b| {
                for json in docs {
                    b.create_doc_from_json(json, None)?;
                }
                Ok::<(), StoreError>(())
            })
            .unwrap();
            let elapsed = start.elapsed();
            db.close().unwrap();
            elapsed
        }
        Scenario::BarePerTransaction => {
            let mut conn = open_bare(dir.path(), encrypted, page);
            let start = Instant::now();
            for (i, json) in docs.iter().enumerate() {
                let tx = conn.transaction().unwrap();
                tx.execute(
                    "INSERT INTO docs (id, content) VALUES (?1, ?2)",
                    (format!("doc{i}"), json),
                )
                .unwrap();
                tx.commit().unwrap();
            }
            start.elapsed()
        }
        Scenario::BareBatch => {
            let mut conn = open_bare(dir.path(), encrypted, page);
            let start = Instant::now();
            let tx = conn.transaction().unwrap();
            {
                let mut stmt = tx
                    .prepare("INSERT INTO docs (id, content) VALUES (?1, ?2)")
                    .unwrap();
                for (i, json) in docs.iter().enumerate() {
                    stmt.execute((format!("doc{i}"), json)).unwrap();
                }
            }
            tx.commit().unwrap();
            start.elapsed()
        }
    }
}

fn median(scenario: Scenario, encrypted: bool, page: u32, docs: &[String]) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| run(scenario, encrypted, page, docs))
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let docs = payloads();
    // For profiling: `CREATE_DOCS_PROFILE=1` repeats only the plaintext batch.
    if std::env::var_os("CREATE_DOCS_PROFILE").is_some() {
        for _ in 0..30 {
            run(Scenario::StoreBatch, false, 65536, &docs);
        }
        return;
    }
    let mb = (DOCS * DOC_BYTES) as f64 / (1024.0 * 1024.0);
    println!(
        "create {DOCS} docs of {} KB ({mb:.1} MiB), median of {RUNS} runs, WAL, synchronous=NORMAL",
        DOC_BYTES / 1024
    );
    println!(
        "{:<10} {:>6} | {:>14} {:>14} | {:>14} {:>14} | {:>12}",
        "cipher",
        "page",
        "store 1/tx ms",
        "store batch ms",
        "bare 1/tx ms",
        "bare batch ms",
        "batch ratio"
    );
    for encrypted in [true, false] {
        for page in [4096u32, 16384, 65536] {
            let store_tx = median(Scenario::StorePerTransaction, encrypted, page, &docs);
            let store_batch = median(Scenario::StoreBatch, encrypted, page, &docs);
            let bare_tx = median(Scenario::BarePerTransaction, encrypted, page, &docs);
            let bare_batch = median(Scenario::BareBatch, encrypted, page, &docs);
            println!(
                "{:<10} {:>6} | {:>14.1} {:>14.1} | {:>14.1} {:>14.1} | {:>11.2}x",
                if encrypted { "sqlcipher" } else { "plain" },
                page,
                ms(store_tx),
                ms(store_batch),
                ms(bare_tx),
                ms(bare_batch),
                ms(store_batch) / ms(bare_batch),
            );
        }
    }
    println!(
        "batch throughput at the default page size ({} bytes):",
        soledad_store::PAGE_SIZE_BYTES
    );
    for encrypted in [true, false] {
        let t = median(
            Scenario::StoreBatch,
            encrypted,
            soledad_store::PAGE_SIZE_BYTES,
            &docs,
        );
        println!(
            "  {:<10} {:>8.1} MiB/s",
            if encrypted { "sqlcipher" } else { "plain" },
            mb / t.as_secs_f64()
        );
    }
}
