//! The scenarios on Soledad and its floor, and what sizes each run uses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use soledad_client::Soledad;

use crate::machine::{peak_rss_mib, reset_peak_rss, rss_mib};
use crate::results::{BlobPoint, ConcurrencyPoint, Results, StorePoint, Transfer};
use crate::soledad::Bench;
use crate::workload::{doc_id, filler, median};

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;

/// The sizes of one run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Runs per figure (medians); the largest inputs run once (`single_run_*`).
    pub(crate) runs: usize,
    /// (count, size) of the device → server → device scenarios, about 10 MB each.
    pub(crate) transfers: Vec<(usize, usize)>,
    /// Store sizes (documents of `store_doc_size` bytes).
    pub(crate) stores: Vec<usize>,
    pub(crate) store_doc_size: usize,
    /// Stores from this many documents up are measured once.
    pub(crate) single_run_docs: usize,
    /// Blob sizes, bytes.
    pub(crate) blobs: Vec<u64>,
    /// Blobs from this size up are measured once.
    pub(crate) single_run_blob: u64,
    /// Concurrent client counts, and how long each level runs.
    pub(crate) clients: Vec<usize>,
    pub(crate) client_window: Duration,
    /// Small syncs measured per store size (medians).
    pub(crate) small_syncs: usize,
}

impl Plan {
    /// The full report (under 20 minutes with the peer on a 2-core machine).
    pub(crate) fn full(runs: usize, max_docs: usize, max_blob_mib: u64) -> Plan {
        Plan {
            runs: runs.max(1),
            transfers: vec![
                (10_000, KIB),
                (1000, 10 * KIB),
                (100, 100 * KIB),
                (10, 1024 * KIB),
            ],
            stores: [100, 1000, 10_000, 100_000]
                .into_iter()
                .filter(|n| *n <= max_docs)
                .collect(),
            store_doc_size: KIB,
            single_run_docs: 100_000,
            blobs: [1024, MIB, 16 * MIB, 256 * MIB, 1024 * MIB]
                .into_iter()
                .filter(|b| *b <= max_blob_mib.saturating_mul(MIB).max(1024))
                .collect(),
            single_run_blob: 256 * MIB,
            clients: vec![1, 4, 16, 64],
            client_window: Duration::from_secs(3),
            small_syncs: 5,
        }
    }

    /// Tiny inputs: every scenario in a few seconds.
    pub(crate) fn smoke() -> Plan {
        Plan {
            runs: 1,
            transfers: vec![(20, KIB), (2, 10 * KIB)],
            stores: vec![10, 40],
            store_doc_size: KIB,
            single_run_docs: 40,
            blobs: vec![1024, 64 * 1024],
            single_run_blob: 64 * 1024,
            clients: vec![1, 2],
            client_window: Duration::from_millis(300),
            small_syncs: 2,
        }
    }

    fn runs_for_docs(&self, count: usize) -> usize {
        if count >= self.single_run_docs {
            1
        } else {
            self.runs
        }
    }

    fn runs_for_blob(&self, size: u64) -> usize {
        if size >= self.single_run_blob {
            1
        } else {
            self.runs
        }
    }
}

/// Runs every Soledad scenario of `plan` (the peer is not run here).
pub(crate) fn run_soledad(plan: &Plan) -> anyhow::Result<Results> {
    let dir = tempfile::Builder::new()
        .prefix("soledad-bench-")
        .tempdir()?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-server")
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()?;
    let bench = server_rt.block_on(Bench::start(dir.path()))?;
    let results = client_rt.block_on(scenarios(plan, &bench, dir.path()));
    server_rt.block_on(bench.shutdown())?;
    drop(client_rt);
    results
}

async fn scenarios(plan: &Plan, bench: &Bench, dir: &std::path::Path) -> anyhow::Result<Results> {
    let mut results = Results {
        blob_rss_isolated: reset_peak_rss(),
        ..Results::default()
    };
    for &(count, size) in &plan.transfers {
        let point = transfer(bench, dir, count, size, plan.runs)
            .await
            .with_context(|| format!("transfer {count} x {size} B"))?;
        eprintln!(
            "soledad: {count} x {size} B: {:.0} ms end to end (floor {:.0} ms)",
            point.total_ms, point.floor_ms
        );
        results.transfers.push(point);
    }
    // Blobs before the large stores: the peak RSS of a blob adds to what the
    // process already holds, which the 100,000-document store raises.
    for &size in &plan.blobs {
        let point = blob(bench, dir, size, plan.runs_for_blob(size))
            .await
            .with_context(|| format!("blob of {size} B"))?;
        eprintln!(
            "soledad: blob {size} B: up {:.0} ms, down {:.0} ms, floor {:.0} ms, peak RSS {:?} MiB",
            point.upload_ms, point.download_ms, point.floor_ms, point.peak_rss_mib
        );
        results.blobs.push(point);
    }
    for &count in &plan.stores {
        let point = store(bench, dir, plan, count)
            .await
            .with_context(|| format!("store of {count}"))?;
        eprintln!(
            "soledad: store of {count}: sync {:.0} ms, no-op {:.1} ms, one doc {:.1} ms",
            point.transfer.total_ms, point.noop_ms, point.one_doc_ms
        );
        results.stores.push(point);
    }
    results.concurrency = concurrency(bench, plan)
        .await
        .context("concurrent clients")?;
    Ok(results)
}

struct Once {
    write_ms: f64,
    upload_ms: f64,
    download_ms: f64,
}

/// One run: a new account, devices A and B; A writes `count` documents in one
/// batch and syncs; B syncs. Returns the devices for more syncs on the store.
async fn transfer_once(
    bench: &Bench,
    count: usize,
    size: usize,
) -> anyhow::Result<(Once, crate::soledad::User, Soledad, Soledad)> {
    let user = bench.user().await?;
    let a = bench.device(&user, "a").await?;
    let b = bench.device(&user, "b").await?;
    let start = Instant::now();
    a.batch(move |batch| {
        for i in 0..count {
            batch.create_doc_from_json(&filler(i, size), Some(&doc_id(i)))?;
        }
        Ok(())
    })
    .await?;
    let write = start.elapsed();
    let start = Instant::now();
    let up = a.sync().await?;
    let upload = start.elapsed();
    let start = Instant::now();
    let down = b.sync().await?;
    let download = start.elapsed();
    let expected = u64::try_from(count)?;
    if up.sent != expected || down.received != expected {
        bail!(
            "sent {} and received {} of {count} documents",
            up.sent,
            down.received
        );
    }
    let once = Once {
        write_ms: ms(write),
        upload_ms: ms(upload),
        download_ms: ms(download),
    };
    Ok((once, user, a, b))
}

fn summarise(count: usize, size: usize, runs: &[Once], floor: &[f64]) -> Transfer {
    let pick = |f: fn(&Once) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    Transfer {
        count,
        size,
        write_ms: pick(|o| o.write_ms),
        upload_ms: pick(|o| o.upload_ms),
        download_ms: pick(|o| o.download_ms),
        total_ms: pick(|o| o.write_ms + o.upload_ms + o.download_ms),
        floor_ms: median(floor),
        runs: runs.len(),
    }
}

async fn transfer(
    bench: &Bench,
    dir: &std::path::Path,
    count: usize,
    size: usize,
    runs: usize,
) -> anyhow::Result<Transfer> {
    let mut samples = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..runs {
        let (once, user, a, b) = transfer_once(bench, count, size).await?;
        bench.forget(&user, vec![a, b]).await?;
        samples.push(once);
        floor.push(floor_docs(dir, count, size).await?);
    }
    Ok(summarise(count, size, &samples, &floor))
}

async fn floor_docs(dir: &std::path::Path, count: usize, size: usize) -> anyhow::Result<f64> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || crate::floor::docs(count, size, &dir)).await?
}

/// A store of `count` documents: its first sync (as [`transfer`]), then no-op
/// syncs on B and one-document syncs A → B on it.
async fn store(
    bench: &Bench,
    dir: &std::path::Path,
    plan: &Plan,
    count: usize,
) -> anyhow::Result<StorePoint> {
    let size = plan.store_doc_size;
    let mut samples = Vec::new();
    let mut floor = Vec::new();
    let mut noop = Vec::new();
    let mut one_doc = Vec::new();
    for _ in 0..plan.runs_for_docs(count) {
        let (once, user, a, b) = transfer_once(bench, count, size).await?;
        samples.push(once);
        for i in 0..plan.small_syncs {
            let start = Instant::now();
            b.sync().await?;
            noop.push(ms(start.elapsed()));
            let body = filler(count + i, size);
            let start = Instant::now();
            a.create_doc_from_json(&body, Some(&doc_id(count + i)))
                .await?;
            a.sync().await?;
            let down = b.sync().await?;
            one_doc.push(ms(start.elapsed()));
            if down.received != 1 {
                bail!("one-document sync received {}", down.received);
            }
        }
        bench.forget(&user, vec![a, b]).await?;
        floor.push(floor_docs(dir, count, size).await?);
    }
    Ok(StorePoint {
        transfer: summarise(count, size, &samples, &floor),
        noop_ms: median(&noop),
        one_doc_ms: median(&one_doc),
    })
}

/// A blob put (encrypt + upload) on device A, fetched by device B.
async fn blob(
    bench: &Bench,
    dir: &std::path::Path,
    size: u64,
    runs: usize,
) -> anyhow::Result<BlobPoint> {
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut floor = Vec::new();
    let mut rss: Option<f64> = None;
    let mut before: Option<f64> = None;
    for run in 0..runs {
        let user = bench.user().await?;
        let a = bench.device(&user, "a").await?;
        let b = bench.device(&user, "b").await?;
        reset_peak_rss();
        before = before.or(rss_mib());
        let id = format!("blob-{run}");
        let manager = a.blobmanager().context("device A has no blob store")?;
        let start = Instant::now();
        manager
            .put(
                &id,
                tokio::io::AsyncReadExt::take(tokio::io::repeat(0x5a), size),
                size,
                "",
                false,
            )
            .await?;
        up.push(ms(start.elapsed()));
        let start = Instant::now();
        let got = b
            .blobmanager()
            .context("device B has no blob store")?
            .fetch_missing("")
            .await?;
        down.push(ms(start.elapsed()));
        if got.downloaded != [id] {
            bail!("device B downloaded {:?}", got.downloaded);
        }
        rss = match (rss, peak_rss_mib()) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        bench.forget(&user, vec![a, b]).await?;
        let dir = dir.to_owned();
        floor.push(tokio::task::spawn_blocking(move || crate::floor::blob(size, &dir)).await??);
    }
    Ok(BlobPoint {
        size,
        upload_ms: median(&up),
        download_ms: median(&down),
        floor_ms: median(&floor),
        peak_rss_mib: rss,
        rss_before_mib: before,
        runs,
    })
}

/// `n` devices (one account each, 10 small documents) doing no-op syncs in a
/// loop for the plan's window, for each `n` of the plan.
async fn concurrency(bench: &Bench, plan: &Plan) -> anyhow::Result<Vec<ConcurrencyPoint>> {
    let most = plan.clients.iter().copied().max().unwrap_or(0);
    let mut devices = Vec::with_capacity(most);
    let mut users = Vec::with_capacity(most);
    for _ in 0..most {
        let user = bench.user().await?;
        let device = bench.device(&user, "a").await?;
        device
            .batch(|batch| {
                for i in 0..10 {
                    batch.create_doc_from_json(&filler(i, 1024), Some(&doc_id(i)))?;
                }
                Ok(())
            })
            .await?;
        device.sync().await?;
        devices.push(Arc::new(device));
        users.push(user);
    }
    let mut points = Vec::new();
    for &clients in &plan.clients {
        let window = plan.client_window;
        let start = Instant::now();
        let tasks: Vec<_> = devices
            .iter()
            .take(clients)
            .map(|device| {
                let device = device.clone();
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    let mut failed = 0_usize;
                    while start.elapsed() < window {
                        let one = Instant::now();
                        match device.sync().await {
                            Ok(_) => times.push(ms(one.elapsed())),
                            // A dropped connection fails the sync in flight; the
                            // next one reconnects, as an application's retry would.
                            Err(soledad_client::Error::Network(_)) if failed < 1000 => failed += 1,
                            Err(other) => return Err(other.into()),
                        }
                    }
                    anyhow::Ok((times, failed))
                })
            })
            .collect();
        let mut times = Vec::new();
        let mut failed = 0;
        for task in tasks {
            let (done, errors) = task.await??;
            times.extend(done);
            failed += errors;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let count = u32::try_from(times.len()).unwrap_or(u32::MAX);
        let point = ConcurrencyPoint {
            clients,
            syncs_per_s: f64::from(count) / elapsed,
            p50_ms: median(&times),
            failed,
        };
        eprintln!(
            "soledad: {clients} clients: {:.0} no-op syncs/s, p50 {:.1} ms, {failed} failed",
            point.syncs_per_s, point.p50_ms
        );
        points.push(point);
    }
    for (user, device) in users.iter().zip(devices) {
        let device = Arc::into_inner(device).context("a client task still holds its device")?;
        bench.forget(user, vec![device]).await?;
    }
    Ok(points)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
