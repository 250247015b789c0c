//! Blob HTTP throughput of the real `soledad-server` binary over TLS on
//! loopback: PUT/GET of 1 KB, 1 MB and 100 MB bodies (median of several runs),
//! requests per second for 1 KB PUT/GET with 50 concurrent clients, and the
//! server's peak RSS (VmHWM) during a 1 GiB streamed upload.
//!
//! Run: `cargo bench -p soledad-server --bench blobs_http`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use soledad_testkit::ServerProcess;

const KB: usize = 1024;
const MB: usize = 1024 * 1024;

struct Server {
    process: ServerProcess,
    url: String,
    auth: String,
    client: reqwest::Client,
    cert: std::path::PathBuf,
}

fn client(cert: &Path, connections_hint: usize) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .pool_max_idle_per_host(connections_hint)
        .build()
        .unwrap()
}

/// The binary through the workspace's harness, with one user, `bench`.
fn start() -> Server {
    let process = ServerProcess::builder()
        .binary(env!("CARGO_BIN_EXE_soledad-server"))
        .option("quota_bytes", 16u64 << 30)
        .user("bench")
        .start();
    let cert = process.cert();
    Server {
        url: format!("{}/blobs/bench", process.url()),
        auth: process.user_authorization("bench"),
        client: client(&cert, 1),
        cert,
        process,
    }
}

impl Server {
    fn vm_hwm_kib(&self) -> u64 {
        let pid = self.process.pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn stop(self) {
        self.process.kill();
    }
}

async fn put(client: &reqwest::Client, s: &Server, id: &str, body: reqwest::Body) {
    let response = client
        .put(format!("{}/{id}", s.url))
        .header("authorization", &s.auth)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "PUT {id}");
}

async fn get(client: &reqwest::Client, s: &Server, id: &str) -> usize {
    let response = client
        .get(format!("{}/{id}", s.url))
        .header("authorization", &s.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {id}");
    let mut stream = response.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

/// A body of `len` bytes streamed in 64 KiB chunks (never all in memory).
fn streamed(len: usize) -> reqwest::Body {
    let chunk = bytes::Bytes::from(vec![0xa5u8; 64 * KB]);
    let chunks = len.div_ceil(64 * KB);
    let stream = futures_util::stream::iter((0..chunks).map(move |i| {
        let n = if i + 1 == chunks {
            len - i * 64 * KB
        } else {
            64 * KB
        };
        Ok::<_, std::io::Error>(chunk.slice(..n))
    }));
    reqwest::Body::wrap_stream(stream)
}

async fn throughput(s: &Server) {
    println!("\n## PUT/GET throughput, one client, TLS (h2) on loopback (median)");
    println!(
        "{:>8} {:>6} {:>12} {:>12} {:>12} {:>12}",
        "size", "runs", "PUT ms", "PUT MiB/s", "GET ms", "GET MiB/s"
    );
    for (label, size, runs) in [("1 KB", KB, 200), ("1 MB", MB, 30), ("100 MB", 100 * MB, 5)] {
        let body = bytes::Bytes::from(vec![0x5au8; size]);
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        for i in 0..runs {
            let id = format!("t{size}-{i}");
            let start = Instant::now();
            put(&s.client, s, &id, reqwest::Body::from(body.clone())).await;
            puts.push(start.elapsed());
            let start = Instant::now();
            assert_eq!(get(&s.client, s, &id).await, size);
            gets.push(start.elapsed());
        }
        let (p, g) = (median(puts), median(gets));
        println!(
            "{label:>8} {runs:>6} {:>12.3} {:>12.1} {:>12.3} {:>12.1}",
            p.as_secs_f64() * 1e3,
            mib_per_s(size, p),
            g.as_secs_f64() * 1e3,
            mib_per_s(size, g)
        );
    }
}

async fn concurrency(s: &Server) {
    const CLIENTS: usize = 50;
    const PER_CLIENT: usize = 40;
    println!("\n## 1 KB requests/s, {CLIENTS} concurrent clients (own connection each), TLS");
    let clients: Vec<reqwest::Client> = (0..CLIENTS).map(|_| client(&s.cert, 1)).collect();
    // Warm up the connections (TLS handshakes are not what we measure).
    for c in &clients {
        let _ = c
            .get(format!("{}?only_count=true", s.url))
            .header("authorization", &s.auth)
            .send()
            .await
            .unwrap();
    }
    let body = bytes::Bytes::from(vec![1u8; KB]);
    for phase in ["PUT", "GET"] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (c, cl) in clients.iter().enumerate() {
            let cl = cl.clone();
            let (url, auth, body) = (s.url.clone(), s.auth.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_CLIENT {
                    let u = format!("{url}/c{c}-{i}");
                    let r = if phase == "PUT" {
                        cl.put(u)
                            .header("authorization", &auth)
                            .body(body.clone())
                            .send()
                            .await
                    } else {
                        cl.get(u).header("authorization", &auth).send().await
                    };
                    let r = r.unwrap();
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        let total = CLIENTS * PER_CLIENT;
        println!(
            "{phase}: {total} requests in {:.3} s = {:.0} req/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
    }
}

async fn big_upload(s: &Server) {
    const SIZE: usize = 1024 * MB;
    println!("\n## 1 GiB streamed upload (fresh server process)");
    let before = s.vm_hwm_kib();
    let start = Instant::now();
    put(&s.client, s, "gib", streamed(SIZE)).await;
    let put_time = start.elapsed();
    let after_put = s.vm_hwm_kib();
    let start = Instant::now();
    assert_eq!(get(&s.client, s, "gib").await, SIZE);
    let get_time = start.elapsed();
    let after_get = s.vm_hwm_kib();
    println!(
        "PUT 1 GiB: {:.2} s ({:.1} MiB/s)",
        put_time.as_secs_f64(),
        mib_per_s(SIZE, put_time)
    );
    println!(
        "GET 1 GiB: {:.2} s ({:.1} MiB/s)",
        get_time.as_secs_f64(),
        mib_per_s(SIZE, get_time)
    );
    println!(
        "server VmHWM: {:.1} MiB before, {:.1} MiB after PUT, {:.1} MiB after GET",
        before as f64 / 1024.0,
        after_put as f64 / 1024.0,
        after_get as f64 / 1024.0
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let server = start();
        throughput(&server).await;
        concurrency(&server).await;
        server.stop();

        let server = start();
        big_upload(&server).await;
        server.stop();
    });
}
