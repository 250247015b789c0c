#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Issue 16: a randomized, seeded, multi-device convergence checker against the real
//! server binary (restarted and SIGKILLed mid-sync), plus the issue's scenarios.
//!
//! Knobs (environment): `SOLEDAD_CHECKER_SEEDS` (how many seeds, default 3),
//! `SOLEDAD_CHECKER_FIRST_SEED` (default 1), `SOLEDAD_CHECKER_STEPS` (steps per seed,
//! default 80), `SOLEDAD_CHECKER_KEEP_GOING=1` (run every seed, then list the failing
//! ones). A long run:
//!
//! ```text
//! SOLEDAD_CHECKER_SEEDS=1000 SOLEDAD_CHECKER_KEEP_GOING=1 \
//!   cargo test --release -p soledad-server --test convergence_checker -- --nocapture
//! ```
//!
//! A failing seed prints itself; keep it below as a named regression case (the
//! steps a seed makes depend on the checker's code, so a regression case is only
//! meaningful with the checker it was found with; keep the checker's step choice
//! stable, or re-find the seeds after changing it).

mod checker;
mod harness;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use soledad_client::Error;

use crate::harness::{Proxy, Server, device};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run_seed(seed: u64, steps: usize) -> Result<checker::Outcome, String> {
    let dir = tempfile::tempdir().unwrap();
    checker::run(dir.path(), seed, steps)
        .await
        .map_err(|e| format!("convergence checker failed for seed {seed} ({steps} steps): {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_seeds_converge_without_loss_or_false_alarms() {
    let seeds = env_u64("SOLEDAD_CHECKER_SEEDS", 3);
    let first = env_u64("SOLEDAD_CHECKER_FIRST_SEED", 1);
    let steps = usize::try_from(env_u64("SOLEDAD_CHECKER_STEPS", 80)).unwrap();
    let keep_going = std::env::var("SOLEDAD_CHECKER_KEEP_GOING").is_ok_and(|v| v == "1");
    let mut total = checker::Outcome::default();
    let mut failed = Vec::new();
    let mut rounds_seen = std::collections::BTreeMap::<usize, u64>::new();
    let started = Instant::now();
    for seed in first..first + seeds {
        if seed > first && (seed - first).is_multiple_of(50) {
            eprintln!(
                "checker: {} seeds done in {:?}, failed so far: {failed:?}",
                seed - first,
                started.elapsed()
            );
        }
        match run_seed(seed, steps).await {
            Ok(o) => {
                total.writes += o.writes;
                total.syncs += o.syncs;
                total.kills += o.kills;
                total.restarts += o.restarts;
                total.transport_errors += o.transport_errors;
                total.merges += o.merges;
                total.superseded += o.superseded;
                *rounds_seen.entry(o.quiesce_rounds).or_default() += 1;
            }
            Err(e) if keep_going => {
                eprintln!("{e}");
                failed.push(seed);
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!(
        "checker: seeds {first}..{} ({steps} steps each) in {:?}: {} writes, {} syncs, {} \
         killed mid-sync, {} restarts, {} transport errors, {} merges sent, {} older \
         revisions superseded; rounds to a quiet round: {rounds_seen:?}; failed seeds: \
         {failed:?}",
        first + seeds,
        started.elapsed(),
        total.writes,
        total.syncs,
        total.kills,
        total.restarts,
        total.transport_errors,
        total.merges,
        total.superseded,
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

/// Seeds that failed with `Integrity { count: 1 }` when the client still treated an
/// own older revision sent back after a cut exchange as a rollback (issue 16).
///
/// A seed fixes the steps, not the timing: where a kill lands in the bytes and how
/// concurrent writes interleave vary a little between runs (connection reuse, task
/// scheduling), so a seed does not always replay its failure. The deterministic guard
/// for this one is `issue16_a_cut_upload_plus_a_local_write_is_no_integrity_alarm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue16_own_older_revision_seeds() {
    for seed in [9, 38] {
        if let Err(e) = run_seed(seed, 80).await {
            panic!("{e}");
        }
    }
}

/// Issue 16, first scenario: A writes 600 documents; the server is killed once it
/// has stored 256 of them; after the restart A syncs again and, while that upload
/// streams, the application updates `bulk005`. The server honestly sends back A's
/// own older `bulk005` (stored during the cut exchange): superseded, no alarm; the
/// new revision leaves at the next sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_a_cut_upload_plus_a_local_write_is_no_integrity_alarm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server")).await;
    let proxy = Proxy::start(&server).await;
    let a = device(
        &dir.path().join("a"),
        &proxy.url(),
        &server.cert(),
        &server.token,
    )
    .await;
    a.sync().await.unwrap();
    for i in 0..600 {
        a.create_doc(
            &json!({"i": i, "pad": "p".repeat(2000)}),
            Some(&format!("bulk{i:03}")),
        )
        .await
        .unwrap();
    }

    // Let ~400 documents through, wait until the server committed its first batch
    // (256, bulk005 among them), then kill it.
    let knobs = proxy.knobs.clone();
    knobs.hold_upload_at.store(
        knobs.uploaded.load(Ordering::SeqCst) + 400 * 2100,
        Ordering::SeqCst,
    );
    let (cut, ()) = tokio::join!(a.sync(), async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.committed_docs() < 256 {
            assert!(
                Instant::now() < deadline,
                "the first batch was not committed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.kill();
        knobs.hold_upload_at.store(0, Ordering::SeqCst);
    });
    assert!(matches!(cut, Err(Error::Network(_))), "{cut:?}");
    let committed = server.committed_docs();
    assert!((256..600).contains(&committed), "{committed} committed");
    let old = a.get_doc("bulk005", false).await.unwrap().unwrap();

    // Restart; once the upload streams (the sync took its starting position), hold
    // the response until the application has written bulk005.
    server.serve().await;
    let streaming = knobs.uploaded.load(Ordering::SeqCst) + 100_000;
    knobs.hold_download_at.store(streaming, Ordering::SeqCst);
    let (resumed, newer) = tokio::join!(a.sync(), async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while knobs.uploaded.load(Ordering::SeqCst) < streaming {
            assert!(Instant::now() < deadline, "the upload did not start");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut doc = a.get_doc("bulk005", false).await.unwrap().unwrap();
        doc.set_value(&json!({"i": 5, "edited": true})).unwrap();
        a.put_doc(&mut doc).await.unwrap();
        knobs.hold_download_at.store(0, Ordering::SeqCst);
        doc
    });
    let resumed = resumed.unwrap();
    assert_eq!(resumed.sent as i64, 600 - committed, "{resumed:?}");
    assert_eq!(
        resumed.superseded, 1,
        "A's own older bulk005 came back: {resumed:?}"
    );
    assert!(!resumed.converged, "the edit is still to send: {resumed:?}");
    let kept = a.get_doc("bulk005", false).await.unwrap().unwrap();
    assert_eq!(kept.rev, newer.rev);
    assert_ne!(kept.rev, old.rev);

    let next = a.sync().await.unwrap();
    assert_eq!((next.sent, next.received), (1, 0), "{next:?}");
    assert!(next.converged, "{next:?}");
    let b = device(
        &dir.path().join("b"),
        &proxy.url(),
        &server.cert(),
        &server.token,
    )
    .await;
    assert_eq!(b.sync().await.unwrap().received, 600);
    assert_eq!(
        b.get_doc("bulk005", false)
            .await
            .unwrap()
            .unwrap()
            .value()
            .unwrap(),
        Some(json!({"i": 5, "edited": true}))
    );
    assert_eq!(
        a.get_all_docs(true).await.unwrap().1,
        b.get_all_docs(true).await.unwrap().1
    );
}
