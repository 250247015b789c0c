//! Importing documents through the client: one transaction per `create_doc` call
//! against one `Soledad::batch` for all of them (issue 9, item 7).
//!
//! `cargo bench -p soledad-client --bench import` prints medians of 5 runs for
//! 1000 × 10 KB documents into a fresh encrypted store (and into one already holding
//! 10,000 documents, to show the cost is flat in store size).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use serde_json::json;
use soledad_client::{KdfParams, SecretString, Soledad};

const DOCS: usize = 1000;
const RUNS: usize = 5;

async fn open(dir: &std::path::Path) -> Soledad {
    Soledad::builder("bench-user", SecretString::from("bench passphrase"))
        .secrets_path(dir.join("soledad.json"))
        .local_db_path(dir.join("bench-user.db"))
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap()
}

fn body() -> serde_json::Value {
    json!({ "body": "x".repeat(10 * 1024) })
}

async fn per_call(soledad: &Soledad) -> Duration {
    let content = body();
    let start = Instant::now();
    for _ in 0..DOCS {
        soledad.create_doc(&content, None).await.unwrap();
    }
    start.elapsed()
}

async fn batched(soledad: &Soledad) -> Duration {
    let content = body();
    let start = Instant::now();
    soledad
        .batch(move |batch| {
            for _ in 0..DOCS {
                batch.create_doc(&content, None)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    start.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn measure(prefill: usize) {
    let mut calls = Vec::new();
    let mut batches = Vec::new();
    for _ in 0..RUNS {
        for batch in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let soledad = open(dir.path()).await;
            if prefill > 0 {
                let content = body();
                soledad
                    .batch(move |b| {
                        for _ in 0..prefill {
                            b.create_doc(&content, None)?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            if batch {
                batches.push(batched(&soledad).await);
            } else {
                calls.push(per_call(&soledad).await);
            }
            soledad.close().await.unwrap();
        }
    }
    let (calls, batches) = (median(calls), median(batches));
    println!(
        "store of {prefill:>6} docs: {DOCS} x 10 KB one call each {:>8.1} ms | one batch {:>7.1} ms | {:.1}x",
        calls.as_secs_f64() * 1e3,
        batches.as_secs_f64() * 1e3,
        calls.as_secs_f64() / batches.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    for prefill in [0, 10_000] {
        measure(prefill).await;
    }
}
