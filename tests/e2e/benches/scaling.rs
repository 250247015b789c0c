#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Whole-store syncs as the store grows (issue 14): N × 10 KB documents, with the
//! real `soledad-server` binary on loopback.
//!
//! Run: `cargo bench -p soledad-e2e --bench scaling` (N = 1,000, 10,000 and
//! 100,000; the last takes minutes), or choose the sizes:
//! `SOLEDAD_SCALING_N=1000,10000 cargo bench -p soledad-e2e --bench scaling`
//! (or `-- --n 1000,10000`).
//!
//! For each N, in fresh processes so that each peak RSS belongs to one step:
//! 1. device A writes N documents (random ids, batches of 1,000 through
//!    `Soledad::batch`) and uploads them: **bulk upload** (`upload_s`);
//! 2. the server is restarted (a clean SIGTERM), then a new device B syncs:
//!    **initial sync** (`initial_sync_s`), the server's peak RSS read from
//!    `/proc/<pid>/status` (`VmHWM`) right after it (`server_rss_mb`: this server
//!    process did nothing else) and B's process's own (`client_rss_mb`);
//! 3. B syncs again with nothing new (`noop_ms`), writes one document and syncs
//!    (`one_doc_ms`); then A, in its own process, syncs and receives it
//!    (`one_doc_down_ms`).
//!
//! Prints a human line and one JSON line per N:
//! `{"scenario":"scaling","n":..,"upload_s":..,"initial_sync_s":..,"noop_ms":..,"one_doc_ms":..,"server_rss_mb":..}`
//! (plus peak RSS of the server during the upload, the client's, and the CPU
//! seconds of server and client for the upload and the initial sync, which say
//! more than wall time on a loaded machine). `SOLEDAD_SERVER_BIN` runs another
//! build of the server; `SOLEDAD_SCALING_PERF=<dir>` records `perf` profiles.
//!
//! Measured 2026-12-01 on the shared 2-core dev VM with other work running
//! (load average 1.3-2.8, so wall times vary by tens of percent between runs;
//! CPU seconds are steadier), before (`1128c32`) and after (`a272a0a`) the
//! second round of scaling work, two full runs each, alternated back to back:
//! `SOLEDAD_SCALING_N=1000,10000,100000 cargo bench -p soledad-e2e --bench scaling`
//!
//! | N | upload docs/s | initial sync docs/s | CPU s upload srv+cli (1st run) | CPU s initial srv+cli (1st run) | server RSS MB initial | server RSS MB upload | client RSS MB |
//! |---|---|---|---|---|---|---|---|
//! | 1k before | 10,066 / 7,365 | 10,006 / 7,072 | 0.07+0.05 | 0.04+0.08 | 27.5 / 27.4 | 26.4 / 26.8 | 39 |
//! | 1k after | 20,300 / 15,756 | 12,533 / 12,132 | 0.03+0.04 | 0.03+0.07 | 25.7 / 25.6 | 26.3 / 26.6 | 30-33 |
//! | 10k before | 9,431 / 7,347 | 11,146 / 9,438 | 0.82+0.46 | 0.26+0.71 | 29.7 / 35.2 | 32.3 / 29.8 | 40 |
//! | 10k after | 17,294 / 16,514 | 14,602 / 14,075 | 0.32+0.40 | 0.16+0.69 | 25.9 / 26.4 | 29.7 / 31.4 | 62-63 |
//! | 100k before | 8,983 / 7,787 | 8,761 / 8,193 | 9.15+4.25 | 2.37+9.04 | 38.2 / 38.1 | 34.5 / 35.7 | 41 |
//! | 100k after | 15,608 / 10,590 | 13,735 / 10,261 | 3.90+3.85 | 1.55+7.50 | 26.7 / 26.7 | 38.7 / 35.4 | 67-71 |
//!
//! What made the difference (each commit has its own before/after):
//! - the store's stored-size count is kept in Rust and written once per
//!   transaction instead of by SQLite triggers, which made every insert a
//!   multi-row statement with its own statement journal: the server's CPU for
//!   an upload fell by more than half;
//! - the server hands its response to HTTP in pieces of at most 64 KiB: a
//!   buffer per 2.6 MB chunk made glibc raise its mmap threshold and keep the
//!   freed buffers, so the server's peak RSS grew with the number of chunks
//!   (27 / 35 / 38 MB before, 26 MB at every N after; what bounds it is in
//!   `soledad-server`'s `docsync/exchange.rs`);
//! - the server reads a response chunk's documents with one prepared statement,
//!   and applies an upload batch while it receives the next (HTTP/2 flow
//!   control no longer holds the client back while a batch commits; one more
//!   batch held during an upload);
//! - the client commits one download transaction while it receives and opens
//!   the next, and lets transactions grow to 16 MiB while its database thread
//!   is busy (fewer rewrites of the random id index's pages, which is what
//!   made 100,000 documents cost more per document than 10,000). The client
//!   holds up to two such transactions, hence its higher peak RSS.
//!
//! No-op syncs 1.1-1.9 ms and one-document syncs 2.2-3.2 ms at every N in
//! these runs, before and after (up to 5 and 7 ms on busier runs). The first round of scaling work
//! (streamed responses, id-ordered batches, `49dc730` -> `6c5c51b`) took the
//! 100k initial sync from 2,631 to 6,198 docs/s on a similar load.

#[path = "../common/device.rs"]
mod device;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use soledad_client::Soledad;

const UUID: &str = "scaling-user";
const DOC_BYTES: usize = 10 * 1024;
const WRITE_BATCH: usize = 1000;
const DEFAULT_SIZES: &[usize] = &[1_000, 10_000, 100_000];
const SIZES_VAR: &str = "SOLEDAD_SCALING_N";
/// Set in a child process: which step it runs (`upload`, `initial`, `pull`).
const ROLE_VAR: &str = "SOLEDAD_SCALING_ROLE";
const HOME_VAR: &str = "SOLEDAD_SCALING_HOME";
const URL_VAR: &str = "SOLEDAD_SCALING_URL";
const TOKEN_VAR: &str = "SOLEDAD_SCALING_TOKEN";
const SERVER_PID_VAR: &str = "SOLEDAD_SCALING_SERVER_PID";
/// A directory: record `perf` profiles of each step's server and client there
/// (`<step>-server.data`, `<step>-client.data`). Peak RSS figures are then
/// perf's own for nothing, but the client's stays its own.
const PERF_VAR: &str = "SOLEDAD_SCALING_PERF";

fn main() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(child(&role));
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let sizes = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(SIZES_VAR).ok())
        .map(|text| {
            text.split(',')
                .map(|n| n.trim().replace('_', "").parse::<usize>().unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap_or_else(|| DEFAULT_SIZES.to_vec());
    println!("whole-store syncs, N x 10 KB documents, real server on loopback");
    println!(
        "{:>8} {:>10} {:>9} {:>13} {:>9} {:>8} {:>11} {:>15} {:>13} {:>13}  CPU s server+client: upload / initial",
        "N",
        "upload s",
        "docs/s",
        "initial s",
        "docs/s",
        "noop ms",
        "one-doc ms",
        "one-doc down ms",
        "server RSS MB",
        "client RSS MB",
    );
    for n in sizes {
        let r = run(n);
        println!(
            "{:>8} {:>10.2} {:>9.0} {:>13.2} {:>9.0} {:>8.1} {:>11.1} {:>15.1} {:>13.1} {:>13.1}  {:.2}+{:.2} / {:.2}+{:.2}",
            n,
            r.upload_s,
            n as f64 / r.upload_s,
            r.initial_s,
            n as f64 / r.initial_s,
            r.noop_ms,
            r.one_doc_ms,
            r.one_doc_down_ms,
            r.server_rss_mb,
            r.client_rss_mb,
            r.upload_cpu_s.0,
            r.upload_cpu_s.1,
            r.initial_cpu_s.0,
            r.initial_cpu_s.1
        );
        println!(
            "{{\"scenario\":\"scaling\",\"n\":{n},\"upload_s\":{:.3},\"initial_sync_s\":{:.3},\"noop_ms\":{:.1},\"one_doc_ms\":{:.1},\"server_rss_mb\":{:.1},\"one_doc_down_ms\":{:.1},\"client_rss_mb\":{:.1},\"server_rss_upload_mb\":{:.1},\"upload_cpu_s\":[{:.2},{:.2}],\"initial_sync_cpu_s\":[{:.2},{:.2}]}}",
            r.upload_s,
            r.initial_s,
            r.noop_ms,
            r.one_doc_ms,
            r.server_rss_mb,
            r.one_doc_down_ms,
            r.client_rss_mb,
            r.server_rss_upload_mb,
            r.upload_cpu_s.0,
            r.upload_cpu_s.1,
            r.initial_cpu_s.0,
            r.initial_cpu_s.1
        );
    }
}

struct Figures {
    upload_s: f64,
    initial_s: f64,
    noop_ms: f64,
    one_doc_ms: f64,
    one_doc_down_ms: f64,
    server_rss_mb: f64,
    server_rss_upload_mb: f64,
    client_rss_mb: f64,
    /// CPU seconds (server, client) of the upload and of the initial sync.
    upload_cpu_s: (f64, f64),
    initial_cpu_s: (f64, f64),
}

/// One N: a server, device A's upload, a server restart, device B's syncs, A's pull.
fn run(n: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("server.conf");
    std::fs::write(
        &config,
        format!(
            "[soledad-server]\ndata_path = {}\nusers_address = 127.0.0.1:{port}\nservices_address = 127.0.0.1:0\nquota_bytes = 100000000000\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = Command::new(server_bin())
        .arg("--config")
        .arg(&config)
        .args(["user", "add", UUID])
        .output()
        .unwrap();
    assert!(out.status.success(), "user add failed");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = format!("https://127.0.0.1:{port}");

    let server = serve(&config, port);
    let up = run_child("upload", n, &dir.path().join("a"), &url, &token, &server);
    let server_rss_upload_mb = peak_rss_kib(server.id()) as f64 / 1024.0;
    stop(server);

    // A fresh server process: its peak RSS is the initial sync's alone.
    let server = serve(&config, port);
    let down = run_child("initial", n, &dir.path().join("b"), &url, &token, &server);
    let pull = run_child("pull", n, &dir.path().join("a"), &url, &token, &server);
    stop(server);
    Figures {
        upload_s: up[0],
        initial_s: down[0],
        server_rss_mb: down[1] / 1024.0,
        client_rss_mb: down[2] / 1024.0,
        noop_ms: down[3],
        one_doc_ms: down[4],
        one_doc_down_ms: pull[0],
        server_rss_upload_mb,
        upload_cpu_s: (up[1], up[2]),
        initial_cpu_s: (down[5], down[6]),
    }
}

/// The server binary: this build's, or `SOLEDAD_SERVER_BIN` (to compare builds).
/// The bench starts it itself (not through `ServerProcess`): it restarts it
/// between phases to read each phase's peak RSS, optionally under `perf`.
fn server_bin() -> std::path::PathBuf {
    soledad_testkit::server_binary()
}

fn serve(config: &Path, port: u16) -> Child {
    let server = Command::new(server_bin())
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    server
}

/// A clean shutdown (SIGTERM), so the next server starts from a closed store.
fn stop(mut server: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if server.try_wait().unwrap().is_some() {
            return;
        }
        if Instant::now() > deadline {
            server.kill().unwrap();
            server.wait().unwrap();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one step in a fresh process of this binary; returns its numbers.
fn run_child(
    role: &str,
    n: usize,
    home: &Path,
    url: &str,
    token: &str,
    server: &Child,
) -> Vec<f64> {
    let perf_dir = std::env::var_os(PERF_VAR).map(PathBuf::from);
    let mut command = match &perf_dir {
        Some(dir) => {
            let mut perf = Command::new("perf");
            perf.args(["record", "-q", "-F", "499", "-o"])
                .arg(dir.join(format!("{role}-{n}-client.data")))
                .arg("--")
                .arg(std::env::current_exe().unwrap());
            perf
        }
        None => Command::new(std::env::current_exe().unwrap()),
    };
    let server_perf = perf_dir.as_ref().map(|dir| {
        Command::new("perf")
            .args(["record", "-q", "-F", "499", "-o"])
            .arg(dir.join(format!("{role}-{n}-server.data")))
            .args(["-p", &server.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let out = command
        .env(ROLE_VAR, role)
        .env(SIZES_VAR, n.to_string())
        .env(HOME_VAR, home)
        .env(URL_VAR, url)
        .env(TOKEN_VAR, token)
        .env(SERVER_PID_VAR, server.id().to_string())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    if let Some(mut perf) = server_perf {
        Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status()
            .unwrap();
        perf.wait().unwrap();
    }
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "step {role} failed: {text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("step {role}: no result: {text}"));
    line.split(' ').map(|x| x.parse().unwrap()).collect()
}

/// The child side: prints `RESULT <numbers>`.
async fn child(role: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::var(SIZES_VAR).unwrap().parse().unwrap();
    let home = PathBuf::from(std::env::var(HOME_VAR).unwrap());
    let url = std::env::var(URL_VAR).unwrap();
    let token = std::env::var(TOKEN_VAR).unwrap();
    let server_pid: u32 = std::env::var(SERVER_PID_VAR).unwrap().parse().unwrap();
    let cert = home
        .parent()
        .unwrap()
        .join("data")
        .join("tls")
        .join("cert.pem");
    let device = device(&home, &url, &cert, &token).await;
    match role {
        "upload" => {
            let mut written = 0;
            while written < n {
                let upto = (written + WRITE_BATCH).min(n);
                let range = written..upto;
                device
                    .batch(move |batch| {
                        // Random ids, as `create_doc` makes them in applications.
                        for i in range {
                            batch.create_doc_from_json(&filler(i), None)?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
                written = upto;
            }
            let cpu = (cpu_s(server_pid), cpu_s(std::process::id()));
            let start = Instant::now();
            let report = device.sync().await.unwrap();
            let upload = start.elapsed();
            let cpu = (cpu_s(server_pid) - cpu.0, cpu_s(std::process::id()) - cpu.1);
            assert_eq!(report.sent as usize, n);
            println!("RESULT {} {} {}", upload.as_secs_f64(), cpu.0, cpu.1);
        }
        "initial" => {
            let cpu = (cpu_s(server_pid), cpu_s(std::process::id()));
            let start = Instant::now();
            let report = device.sync().await.unwrap();
            let initial = start.elapsed();
            let cpu = (cpu_s(server_pid) - cpu.0, cpu_s(std::process::id()) - cpu.1);
            let server_rss = peak_rss_kib(server_pid);
            let client_rss = peak_rss_kib(std::process::id());
            assert_eq!(report.received as usize, n);
            let start = Instant::now();
            let report = device.sync().await.unwrap();
            let noop = start.elapsed();
            assert_eq!((report.sent, report.received), (0, 0));
            device
                .create_doc_from_json(&filler(n), Some("doc-from-b"))
                .await
                .unwrap();
            let start = Instant::now();
            let report = device.sync().await.unwrap();
            let one_doc = start.elapsed();
            assert_eq!((report.sent, report.received), (1, 0));
            println!(
                "RESULT {} {} {} {} {} {} {}",
                initial.as_secs_f64(),
                server_rss,
                client_rss,
                ms(noop),
                ms(one_doc),
                cpu.0,
                cpu.1
            );
        }
        "pull" => {
            let start = Instant::now();
            let report = device.sync().await.unwrap();
            let pull = start.elapsed();
            assert_eq!(report.received, 1);
            println!("RESULT {}", ms(pull));
        }
        other => panic!("unknown step {other}"),
    }
    device.close().await.unwrap();
}

async fn device(home: &Path, url: &str, cert: &Path, token: &str) -> Soledad {
    device::open_device(UUID, home, url, cert, token).await
}

/// A JSON object of about 10 KB of incompressible text.
fn filler(seed: usize) -> String {
    let mut state = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut text = String::with_capacity(DOC_BYTES + 16);
    text.push_str("{\"body\":\"");
    while text.len() < DOC_BYTES {
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

/// CPU time (user + system) a process has used so far, seconds.
fn cpu_s(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the 3rd
    // field, utime and stime the 14th and 15th.
    let rest = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Peak resident set (`VmHWM`) of a process, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
