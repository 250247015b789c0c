#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The real `soledad-server` binary is SIGKILLed half-way through a sync of 5000
//! documents; after a restart the next sync completes, nothing is lost or
//! duplicated, and what the server had committed is not sent again.
//!
//! The kill is made deterministic by a loopback TCP proxy between client and
//! server that kills the server after forwarding a set number of upload bytes.

#[path = "../common/device.rs"]
mod device;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;
use soledad_client::Soledad;
use soledad_server::testing::ServerFiles;
use soledad_testkit::{Killer, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

const UUID: &str = "crash-user";
const DOCS: usize = 5000;

fn start_server() -> ServerProcess {
    ServerProcess::builder().user(UUID).start()
}

/// Which direction's bytes count towards the kill.
#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Upload,
    Download,
}

/// Forwards loopback connections to the current server; after `kill_after` bytes
/// in the chosen direction (when armed), SIGKILLs the server process.
struct KillProxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    armed: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    victim: Arc<Mutex<Option<Killer>>>,
}

impl KillProxy {
    async fn start(target: SocketAddr, kill_after: u64, direction: Direction) -> KillProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = KillProxy {
            addr: listener.local_addr().unwrap(),
            target: Arc::new(Mutex::new(target)),
            armed: Arc::new(AtomicBool::new(false)),
            forwarded: Arc::new(AtomicU64::new(0)),
            victim: Arc::new(Mutex::new(None)),
        };
        let (target, armed, forwarded, victim) = (
            proxy.target.clone(),
            proxy.armed.clone(),
            proxy.forwarded.clone(),
            proxy.victim.clone(),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let to = *target.lock().await;
                let (armed, forwarded, victim) = (armed.clone(), forwarded.clone(), victim.clone());
                tokio::spawn(async move {
                    let inbound = inbound;
                    let Ok(outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let kill = Kill {
                        armed,
                        forwarded,
                        victim,
                        after: kill_after,
                    };
                    let upload = pump(ri, wo, (direction == Direction::Upload).then_some(&kill));
                    let download =
                        pump(ro, wi, (direction == Direction::Download).then_some(&kill));
                    tokio::select! { _ = upload => {}, _ = download => {} }
                });
            }
        });
        proxy
    }
}

/// When to kill the server: after `after` counted bytes while armed.
struct Kill {
    armed: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    victim: Arc<Mutex<Option<Killer>>>,
    after: u64,
}

/// Copies one direction; counts its bytes towards `kill` when given.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    kill: Option<&Kill>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let Some(kill) = kill else { continue };
        let total = kill.forwarded.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if kill.armed.load(Ordering::SeqCst) && total >= kill.after {
            if let Some(killer) = kill.victim.lock().await.take() {
                killer.kill();
            }
            break;
        }
    }
}

/// Opens a device of `UUID` (its own directory) through `url`.
async fn device(home: &Path, url: &str, cert: &Path, token: &str) -> Soledad {
    device::open_device(UUID, home, url, cert, token).await
}

/// Documents the server has committed for the user (its test hooks).
fn committed_docs(data: &Path) -> i64 {
    let count = ServerFiles::at(data).doc_count(UUID).unwrap();
    i64::try_from(count).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cut_by_a_server_crash_resumes_without_loss_or_resend() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = start_server();
    let dir = server.dir();
    let token = server.token(UUID);
    let cert = server.cert();

    // Each document is ~2 KB, so the upload is ~10 MB and the kill lands mid-way.
    let proxy = KillProxy::start(server.users_addr(), 5 << 20, Direction::Upload).await;
    let url = format!("https://127.0.0.1:{}", proxy.addr.port());
    let a = device(&dir.join("a"), &url, &cert, token).await;
    // Bootstrap (backup upload) before arming the proxy.
    a.sync().await.unwrap();
    for i in 0..DOCS {
        a.create_doc(
            &json!({"i": i, "pad": "p".repeat(2000)}),
            Some(&format!("doc-{i:05}")),
        )
        .await
        .unwrap();
    }
    *proxy.victim.lock().await = Some(server.killer());
    proxy.forwarded.store(0, Ordering::SeqCst);
    proxy.armed.store(true, Ordering::SeqCst);

    let cut = a.sync().await;
    assert!(
        cut.is_err(),
        "the sync must fail when the server dies: {cut:?}"
    );
    assert!(proxy.victim.lock().await.is_none(), "the server was killed");
    let committed = committed_docs(server.data_path());
    assert!(
        committed > 0 && (committed as usize) < DOCS,
        "killed mid-way: {committed} committed"
    );

    // Restart on the same data and port; the proxy keeps forwarding (disarmed).
    proxy.armed.store(false, Ordering::SeqCst);
    server.restart();
    let resumed = a.sync().await.unwrap();
    assert_eq!(
        resumed.sent as i64,
        DOCS as i64 - committed,
        "committed documents are not sent again"
    );
    assert_eq!(committed_docs(server.data_path()) as usize, DOCS);

    let b = device(&dir.join("b"), &url, &cert, token).await;
    let got = b.sync().await.unwrap();
    assert_eq!(got.received as usize, DOCS);
    let (_, docs_a) = a.get_all_docs(true).await.unwrap();
    let (_, docs_b) = b.get_all_docs(true).await.unwrap();
    assert_eq!(docs_a.len(), DOCS);
    assert_eq!(docs_a, docs_b);
    // And a second sync of A has nothing left to do.
    let again = a.sync().await.unwrap();
    assert_eq!((again.sent, again.received), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_by_a_server_crash_resumes_where_it_stopped() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = start_server();
    let dir = server.dir();
    let token = server.token(UUID);
    let cert = server.cert();
    let direct = server.url();

    let a = device(&dir.join("a"), &direct, &cert, token).await;
    for i in 0..DOCS {
        a.create_doc(
            &json!({"i": i, "pad": "p".repeat(2000)}),
            Some(&format!("doc-{i:05}")),
        )
        .await
        .unwrap();
    }
    a.sync().await.unwrap();

    let proxy = KillProxy::start(server.users_addr(), 5 << 20, Direction::Download).await;
    let url = format!("https://127.0.0.1:{}", proxy.addr.port());
    let b = device(&dir.join("b"), &url, &cert, token).await;
    *proxy.victim.lock().await = Some(server.killer());
    proxy.forwarded.store(0, Ordering::SeqCst);
    proxy.armed.store(true, Ordering::SeqCst);
    let cut = b.sync().await;
    assert!(
        cut.is_err(),
        "the sync must fail when the server dies: {cut:?}"
    );
    assert!(proxy.victim.lock().await.is_none(), "the server was killed");
    let kept = b.get_all_docs(true).await.unwrap().1.len();
    assert!(kept > 0 && kept < DOCS, "applied batches are kept: {kept}");

    proxy.armed.store(false, Ordering::SeqCst);
    server.restart();
    let resumed = b.sync().await.unwrap();
    assert_eq!(
        resumed.received as usize,
        DOCS - kept,
        "only what was missing is downloaded"
    );
    let (_, docs_a) = a.get_all_docs(true).await.unwrap();
    let (_, docs_b) = b.get_all_docs(true).await.unwrap();
    assert_eq!(docs_a, docs_b);
}
