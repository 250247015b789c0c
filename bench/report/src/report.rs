//! `docs/benchmarks.md`, its plots, and the README's generated block.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::machine::Machine;
use crate::plot::{self, Chart, Series};
use crate::results::{PeerLine, Results};
use crate::scenarios::Plan;

/// The README markers the generated block sits between.
pub(crate) const BEGIN: &str = "<!-- bench-report:begin -->";
pub(crate) const END: &str = "<!-- bench-report:end -->";
const POUCHDB: &str = "pouchdb";
const COMDB: &str = "pouchdb+comdb";

/// What [`write()`] wrote.
pub(crate) struct Written {
    pub(crate) markdown: PathBuf,
    pub(crate) plots: Vec<PathBuf>,
}

/// Writes `out_dir/benchmarks.md`, `out_dir/benchmarks/*.svg` and
/// `out_dir/benchmarks/results.json`.
pub(crate) fn write(
    results: &Results,
    machine: &Machine,
    plan: &Plan,
    out_dir: &Path,
) -> anyhow::Result<Written> {
    let plot_dir = out_dir.join("benchmarks");
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    let mut plots = Vec::new();
    for (name, chart) in charts(results) {
        let path = plot_dir.join(name);
        plot::draw(&chart, &path).with_context(|| format!("drawing {}", path.display()))?;
        plots.push(path);
    }
    std::fs::write(
        plot_dir.join("results.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "date": today(),
            "machine": machine,
            "results": results,
        }))?,
    )?;
    let markdown = out_dir.join("benchmarks.md");
    std::fs::write(&markdown, document(results, machine, plan))
        .with_context(|| format!("writing {}", markdown.display()))?;
    Ok(Written { markdown, plots })
}

/// Replaces the block between [`BEGIN`] and [`END`] in `readme`.
pub(crate) fn update_readme(
    readme: &Path,
    results: &Results,
    machine: &Machine,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(readme).with_context(|| format!("reading {}", readme.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no {BEGIN} … {END} block", readme.display());
    };
    if end < begin {
        bail!("{}: {END} comes before {BEGIN}", readme.display());
    }
    let before = text.get(..begin + BEGIN.len()).unwrap_or_default();
    let after = text.get(end..).unwrap_or_default();
    let updated = format!("{before}\n{}{after}", readme_block(results, machine));
    std::fs::write(readme, updated).with_context(|| format!("writing {}", readme.display()))?;
    Ok(())
}

fn charts(r: &Results) -> Vec<(&'static str, Chart)> {
    let secs = |ms: f64| ms / 1000.0;
    let transfer_size = |pick: fn(&crate::results::Transfer) -> f64| {
        r.transfers
            .iter()
            .map(|t| (t.size as f64, pick(t)))
            .collect::<Vec<_>>()
    };
    let peer_size = |system: &str| {
        r.peer
            .iter()
            .filter_map(|l| match l {
                PeerLine::Transfer {
                    system: s,
                    size,
                    total_ms,
                    ..
                } if s == system => Some((*size as f64, *total_ms)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut sync_vs_size = vec![
        line(
            "Soledad",
            transfer_size(|t| t.total_ms),
            plot::SOLEDAD,
            false,
        ),
        line(
            "raw floor (AES-GCM + SQLite)",
            transfer_size(|t| t.floor_ms),
            plot::FLOOR,
            true,
        ),
    ];
    for (system, name, color) in [
        (POUCHDB, "PouchDB", plot::POUCHDB),
        (COMDB, "PouchDB + ComDB", plot::COMDB),
    ] {
        let points = peer_size(system);
        if !points.is_empty() {
            sync_vs_size.push(line(name, points, color, false));
        }
    }
    let store = |pick: fn(&crate::results::StorePoint) -> f64| {
        r.stores
            .iter()
            .map(|s| (s.transfer.count as f64, pick(s)))
            .collect::<Vec<_>>()
    };
    let blob = |pick: fn(&crate::results::BlobPoint) -> f64| {
        r.blobs
            .iter()
            .map(|b| (b.size as f64, b.size as f64 / 1e6 / secs(pick(b))))
            .collect::<Vec<_>>()
    };
    vec![
        (
            "sync-vs-size.svg",
            Chart {
                title: "About 10 MB device → server → device, by document size".into(),
                x_label: "document size (bytes; 1 kB = 1000 B)".into(),
                y_label: "end-to-end time (ms)".into(),
                x_ticks: plot::si_bytes,
                series: sync_vs_size,
            },
        ),
        (
            "sync-vs-count.svg",
            Chart {
                title: "First sync of a store, by document count (1 KB documents)".into(),
                x_label: "documents in the store".into(),
                y_label: "end-to-end time (ms)".into(),
                x_ticks: plot::number,
                series: vec![
                    line(
                        "Soledad",
                        store(|s| s.transfer.total_ms),
                        plot::SOLEDAD,
                        false,
                    ),
                    line(
                        "raw floor (AES-GCM + SQLite)",
                        store(|s| s.transfer.floor_ms),
                        plot::FLOOR,
                        true,
                    ),
                ],
            },
        ),
        (
            "small-syncs-vs-store.svg",
            Chart {
                title: "No-op and one-document sync, by store size".into(),
                x_label: "documents in the store".into(),
                y_label: "sync time (ms)".into(),
                x_ticks: plot::number,
                series: vec![
                    line(
                        "no-op sync (one device)",
                        store(|s| s.noop_ms),
                        plot::SOLEDAD,
                        false,
                    ),
                    line(
                        "one new document, A → server → B",
                        store(|s| s.one_doc_ms),
                        plot::SOLEDAD_2,
                        false,
                    ),
                ],
            },
        ),
        (
            "blob-throughput.svg",
            Chart {
                title: "Blob throughput, by blob size".into(),
                x_label: "blob size (bytes; 1 MB = 10^6 B)".into(),
                y_label: "throughput (MB/s, 10^6 bytes)".into(),
                x_ticks: plot::si_bytes,
                series: vec![
                    line(
                        "Soledad put + upload (device A)",
                        blob(|b| b.upload_ms),
                        plot::SOLEDAD,
                        false,
                    ),
                    line(
                        "Soledad download + verify (device B)",
                        blob(|b| b.download_ms),
                        plot::SOLEDAD_2,
                        false,
                    ),
                    line(
                        "raw floor (AES-GCM to file + fsync + decrypt)",
                        blob(|b| b.floor_ms),
                        plot::FLOOR,
                        true,
                    ),
                ],
            },
        ),
        (
            "blob-rss.svg",
            Chart {
                title: "Memory a blob transfer adds, by blob size".into(),
                x_label: "blob size (bytes; 1 MB = 10^6 B)".into(),
                y_label: "added peak RSS, devices + server (MiB)".into(),
                x_ticks: plot::si_bytes,
                series: vec![line(
                    "peak RSS − RSS just before the blob",
                    r.blobs
                        .iter()
                        .filter_map(|b| {
                            Some((
                                b.size as f64,
                                (b.peak_rss_mib? - b.rss_before_mib?).max(0.1),
                            ))
                        })
                        .collect(),
                    plot::SOLEDAD,
                    false,
                )],
            },
        ),
        (
            "concurrency.svg",
            Chart {
                title: "Server: concurrent clients doing no-op syncs".into(),
                x_label: "concurrent clients (one account each)".into(),
                y_label: "syncs per second (all clients)".into(),
                x_ticks: plot::number,
                series: vec![line(
                    "Soledad",
                    r.concurrency
                        .iter()
                        .map(|c| (c.clients as f64, c.syncs_per_s))
                        .collect(),
                    plot::SOLEDAD,
                    false,
                )],
            },
        ),
    ]
}

fn line(
    name: &str,
    points: Vec<(f64, f64)>,
    color: plotters::style::RGBColor,
    dashed: bool,
) -> Series {
    Series {
        name: name.to_owned(),
        points,
        color,
        dashed,
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.1}×", a / b)
    } else {
        "–".into()
    }
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".into(), |m| format!("{m:.0}"))
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), ms)
}

fn docs_label(count: usize, size: usize) -> String {
    format!(
        "{} × {}",
        plot::number(count as f64),
        plot::bytes(size as f64)
    )
}

/// The side-by-side table of the device → server → device scenarios.
fn transfer_table(r: &Results, out: &mut String) {
    out.push_str("| documents | Soledad ms (write / up / down) | raw floor ms | Soledad ÷ floor | PouchDB ms | PouchDB + ComDB ms | PouchDB ÷ Soledad | PouchDB + ComDB ÷ Soledad |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for t in &r.transfers {
        let pouch = r.peer_total(POUCHDB, t.count, t.size);
        let comdb = r.peer_total(COMDB, t.count, t.size);
        let _ = writeln!(
            out,
            "| {} | **{}** ({} / {} / {}) | {} | {} | {} | {} | {} | {} |",
            docs_label(t.count, t.size),
            ms(t.total_ms),
            ms(t.write_ms),
            ms(t.upload_ms),
            ms(t.download_ms),
            ms(t.floor_ms),
            ratio(t.total_ms, t.floor_ms),
            opt_ms(pouch),
            opt_ms(comdb),
            pouch.map_or_else(|| "–".into(), |p| ratio(p, t.total_ms)),
            comdb.map_or_else(|| "–".into(), |c| ratio(c, t.total_ms)),
        );
    }
}

fn live_table(r: &Results, out: &mut String) {
    out.push_str("| system | p50 ms | p90 ms | max ms | writes |\n|---|---|---|---|---|\n");
    let live = r.live();
    for line in &live {
        if let PeerLine::Live {
            system,
            p50_ms,
            p90_ms,
            max_ms,
            n,
        } = line
        {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {n} |",
                system_name(system),
                ms(*p50_ms),
                ms(*p90_ms),
                ms(*max_ms)
            );
        }
    }
    // bench-report: the live sync bench's line plugs in here. After the live
    // branch is merged, run it and pass its `{"scenario":"live_latency",...}` line
    // with `--extra-json FILE` (scripts/bench-report does when it finds the bench).
    if !live
        .iter()
        .any(|l| matches!(l, PeerLine::Live { system, .. } if system == "soledad"))
    {
        out.push_str("| Soledad | not measured in this run (pass the live sync bench's JSON line with `--extra-json FILE`) | | | |\n");
    }
}

fn system_name(system: &str) -> &str {
    match system {
        "soledad" => "Soledad",
        POUCHDB => "PouchDB (live replication)",
        COMDB => "PouchDB + ComDB (live replication)",
        other => other,
    }
}

fn header(r: &Results, machine: &Machine, out: &mut String) {
    let _ = writeln!(
        out,
        "Measured {} with `scripts/bench-report` on {}; {:.0} s of measuring.",
        today(),
        machine.summary(),
        r.total_seconds
    );
    if machine.busy() {
        out.push_str(
            "The load average was above the number of cores: the machine was busy with other work, \
             so these figures are noisy and slower than on a quiet machine.\n",
        );
    }
}

fn document(r: &Results, machine: &Machine, plan: &Plan) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n<!-- Generated by scripts/bench-report (bench/report); edits are overwritten. -->\n\n");
    header(r, machine, &mut out);
    let _ = writeln!(
        out,
        "\nEach figure is the median of {} runs (stores of {} documents or more and blobs of {} or more: one run). \
         A shared or busy machine makes every figure noisy; compare the columns of one run (the ratios) \
         rather than absolute figures across runs.\n",
        plan.runs,
        plot::number(plan.single_run_docs as f64),
        plot::bytes(plan.single_run_blob as f64)
    );
    out.push_str("What is compared:\n\n\
        - **Soledad**: a real `soledad-server` on 127.0.0.1 (TLS, in the report's process on a runtime of its own) \
        and two devices through the public `soledad-client` API, each with its SQLCipher store; documents are \
        encrypted per document for the server, blobs are streamed with AES-256-GCM.\n\
        - **raw floor**: the same bytes with nothing else, in the same process: each document sealed \
        (AES-256-GCM, as the uploader does), written once into a plain SQLite table per side (server, receiving \
        device), opened again; for blobs the AES-256-GCM blob stream into a file with fsync, then decrypted back.\n\
        - **PouchDB**: `pouchdb-server` 4.2.0 on disk (LevelDB) on 127.0.0.1, two PouchDB 9 devices (memory \
        adapter), `replicate.to` then `replicate.from` (`bench/peer/peer.js`); **PouchDB + ComDB** the same with the \
        ComDB 6.0.0-beta encryption plugin (TweetNaCl), which encrypts on write and decrypts on replication.\n\n\
        End to end means: the local write of all documents on device A (one batch / `bulkDocs`), A → server, \
        server → device B, until B holds every document.\n\n");

    out.push_str("## Device → server → device\n\nAbout 10 MB in documents of one size.\n\n");
    transfer_table(r, &mut out);
    out.push_str(
        "\nThe peer runs the three scenarios of issue 15 (1000 × 10 KB, 100 × 100 KB, 10 × 1 MB); \
        \"–\" where it has no figure. Ratios above 1× mean the peer is slower than Soledad.\n",
    );
    out.push_str("\n![sync time by document size](benchmarks/sync-vs-size.svg)\n\n");

    out.push_str(
        "## Sync time by document count\n\n1 KB documents; the new store's first sync.\n\n",
    );
    out.push_str("| documents | Soledad ms (write / up / down) | raw floor ms | Soledad ÷ floor | runs |\n|---|---|---|---|---|\n");
    for s in &r.stores {
        let t = &s.transfer;
        let _ = writeln!(
            out,
            "| {} | **{}** ({} / {} / {}) | {} | {} | {} |",
            plot::number(t.count as f64),
            ms(t.total_ms),
            ms(t.write_ms),
            ms(t.upload_ms),
            ms(t.download_ms),
            ms(t.floor_ms),
            ratio(t.total_ms, t.floor_ms),
            t.runs
        );
    }
    out.push_str("\n![sync time by document count](benchmarks/sync-vs-count.svg)\n\n");

    out.push_str("## Small syncs on a large store\n\nOn the stores above: a sync with nothing new (device B), and one new 1 KB document synced A → server → B.\n\n");
    out.push_str(
        "| documents in the store | no-op sync ms | one-document sync ms |\n|---|---|---|\n",
    );
    for s in &r.stores {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            plot::number(s.transfer.count as f64),
            ms(s.noop_ms),
            ms(s.one_doc_ms)
        );
    }
    out.push_str(
        "\n![no-op and one-document sync by store size](benchmarks/small-syncs-vs-store.svg)\n\n",
    );

    out.push_str("## Blobs\n\nOne blob: `put` on device A (encrypt into its store and upload), `fetch_missing` on device B (download, verify, store). \
        MB/s are 10^6 bytes per second. Peak RSS is this process's `VmHWM` (both devices and the server), reset before each size");
    out.push_str(if r.blob_rss_isolated {
        ".\n\n"
    } else {
        " where the kernel allows (it did not here: the figures are the process's peak so far).\n\n"
    });
    out.push_str(
        "The process already holds memory from the scenarios before (freed heap the allocator keeps), \
         which a transfer reuses: the plot shows what the peak adds to the resident size just before the blob, \
         a lower bound of what a fresh process would need (0.1 MiB or less is drawn at 0.1).\n\n",
    );
    out.push_str("| blob | put + upload ms (MB/s) | download ms (MB/s) | raw floor ms (MB/s) | Soledad (up + down) ÷ floor | peak RSS MiB (resident before) |\n|---|---|---|---|---|---|\n");
    for b in &r.blobs {
        let rate = |v: f64| {
            if v > 0.0 {
                b.size as f64 / 1e6 / (v / 1000.0)
            } else {
                0.0
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} ({}) | {} ({}) | {} | {} ({}) |",
            plot::bytes(b.size as f64),
            ms(b.upload_ms),
            plot::number(rate(b.upload_ms)),
            ms(b.download_ms),
            plot::number(rate(b.download_ms)),
            ms(b.floor_ms),
            plot::number(rate(b.floor_ms)),
            ratio(b.upload_ms + b.download_ms, b.floor_ms),
            mib(b.peak_rss_mib),
            mib(b.rss_before_mib)
        );
    }
    out.push_str("\n![blob throughput by size](benchmarks/blob-throughput.svg)\n\n![peak RSS by blob size](benchmarks/blob-rss.svg)\n\n");

    let _ = writeln!(
        out,
        "## Server under concurrent clients\n\nN devices, one account each (10 documents), syncing with nothing new in a loop for {:.1} s; \
         client and server share the machine's cores.\n",
        plan.client_window.as_secs_f64()
    );
    out.push_str("| clients | syncs/s | p50 sync ms | failed syncs (connection dropped) |\n|---|---|---|---|\n");
    for c in &r.concurrency {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} |",
            c.clients,
            c.syncs_per_s,
            ms(c.p50_ms),
            c.failed
        );
    }
    if r.concurrency.iter().any(|c| c.failed > 0) {
        out.push_str("\nFailed syncs: the server's HTTP/2 layer (h2) closes a connection with `GOAWAY ENHANCE_YOUR_CALM` \
            (`too_many_data_frames`) after many small DATA frames on it, which a device syncing in a loop sends; the sync in \
            flight fails with a network error and the next one reconnects (counted, not in syncs/s).\n");
    }
    out.push_str("\n![syncs per second by concurrent clients](benchmarks/concurrency.svg)\n\n");

    out.push_str("## Live propagation latency\n\nA write on device A until device B sees it, both replicating live; at least 30 writes, 50 ms apart.\n\n");
    live_table(r, &mut out);

    let others: Vec<&serde_json::Value> = r
        .extra
        .iter()
        .filter(|v| v.get("scenario").and_then(|s| s.as_str()) != Some("live_latency"))
        .collect();
    if !others.is_empty() {
        out.push_str("\n## Other harnesses\n\nJSON lines given with `--extra-json`, as given.\n\n");
        for value in others {
            let _ = writeln!(out, "- `{value}`");
        }
    }
    out.push_str("\n## Reproduce\n\n```sh\nscripts/bench-report            # builds in release, installs the peer on first use, writes this page\nscripts/bench-report --no-peer  # Soledad and the floor only\n```\n\nThe raw figures are in [`benchmarks/results.json`](benchmarks/results.json).\n");
    out
}

fn readme_block(r: &Results, machine: &Machine) -> String {
    let mut out = String::new();
    header(r, machine, &mut out);
    out.push_str(
        "\nMedians. Full report with plots: [docs/benchmarks.md](docs/benchmarks.md).\n\n",
    );
    transfer_table(r, &mut out);
    out.push('\n');
    out.push_str("| what | Soledad |\n|---|---|\n");
    if let Some(s) = r.stores.last() {
        let _ = writeln!(
            out,
            "| first sync of {} × 1 KB documents, end to end | {} ms (raw floor {} ms) |",
            plot::number(s.transfer.count as f64),
            ms(s.transfer.total_ms),
            ms(s.transfer.floor_ms)
        );
        let _ = writeln!(
            out,
            "| no-op / one-document sync on that store | {} ms / {} ms |",
            ms(s.noop_ms),
            ms(s.one_doc_ms)
        );
    }
    if let Some(b) = r.blobs.last() {
        let rate = |v: f64| b.size as f64 / 1e6 / (v / 1000.0);
        let _ = writeln!(
            out,
            "| blob of {}: put + upload / download | {:.0} / {:.0} MB/s (raw floor {:.0} MB/s), peak RSS {} MiB (resident before {} MiB, both devices and the server) |",
            plot::bytes(b.size as f64),
            rate(b.upload_ms),
            rate(b.download_ms),
            rate(b.floor_ms),
            mib(b.peak_rss_mib),
            mib(b.rss_before_mib)
        );
    }
    if let Some(c) = r.concurrency.last() {
        let _ = writeln!(
            out,
            "| {} concurrent clients, no-op syncs | {:.0} syncs/s (p50 {} ms) |",
            c.clients,
            c.syncs_per_s,
            ms(c.p50_ms)
        );
    }
    for line in r.live() {
        if let PeerLine::Live {
            system,
            p50_ms,
            p90_ms,
            ..
        } = line
        {
            let _ = writeln!(
                out,
                "| live propagation, {}: p50 / p90 | {} / {} ms |",
                system_name(&system),
                ms(p50_ms),
                ms(p90_ms)
            );
        }
    }
    out.push('\n');
    out
}

/// Today's date (UTC), `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} (UTC)")
}
