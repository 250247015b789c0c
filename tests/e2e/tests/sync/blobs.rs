//! Blobs end to end (issue 11): the BlobManager of two devices against a real
//! server on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use soledad_client::{
    BlobConfig, BlobManager, Error, Flag, KdfParams, Order, RemoteListQuery, SecretString, Soledad,
    SyncStatus,
};
use soledad_protocol::ErrorKind;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use soledad_testkit::Killer;

use crate::util::{Env, PASSPHRASE, UUID, files_under};

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Fast retries for tests.
pub fn fast(max_retries: u32) -> BlobConfig {
    BlobConfig {
        retry_step: Duration::from_millis(10),
        retry_max_delay: Duration::from_millis(40),
        max_retries,
        ..BlobConfig::default()
    }
}

/// A device of the user with a blob store, talking to `url`.
pub async fn device_at(env: &Env, name: &str, url: &str, config: BlobConfig) -> Soledad {
    let home = env.home(name);
    std::fs::create_dir_all(&home).unwrap();
    Soledad::builder(UUID, SecretString::from(PASSPHRASE))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .server_url(url)
        .cert_file(env.cert())
        .auth_token(env.token.clone())
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .blob_config(config)
        .open()
        .await
        .unwrap()
}

pub async fn device(env: &Env, name: &str) -> Soledad {
    device_at(env, name, &env.url(), fast(2)).await
}

pub fn bm(device: &Soledad) -> &BlobManager {
    device.blobmanager().unwrap()
}

pub async fn read_all(mut reader: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

pub async fn get(device: &Soledad, id: &str, ns: &str) -> Vec<u8> {
    read_all(bm(device).get(id, ns).await.unwrap().unwrap()).await
}

/// The server's content file of a blob (the server's test hooks know where).
pub fn server_blob(env: &Env, ns: &str, id: &str) -> PathBuf {
    env.files().blob_file(UUID, ns, id).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether any file under `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> bool {
    files_under(dir)
        .iter()
        .any(|f| std::fs::read(f).is_ok_and(|bytes| contains(&bytes, needle)))
}

#[tokio::test]
async fn local_store_is_encrypted_at_rest_and_round_trips() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let marker = b"PLAINTEXT-MARKER-0123456789-".repeat(5000);
    bm(&a)
        .put("secret", &marker[..], marker.len() as u64, "", true)
        .await
        .unwrap();
    assert_eq!(get(&a, "secret", "").await, marker);
    assert_eq!(bm(&a).local_list("").await.unwrap(), ["secret"]);
    assert_eq!(
        bm(&a)
            .local_list_status(SyncStatus::LocalOnly, "")
            .await
            .unwrap(),
        ["secret"]
    );
    let home = env.home("a");
    assert!(!any_file_contains(&home, b"PLAINTEXT-MARKER"));
    let db = std::fs::read(home.join(format!("{UUID}_blobs.db"))).unwrap();
    assert!(!db.starts_with(b"SQLite format 3"), "blob db not encrypted");
    // Blobs are immutable.
    let again = bm(&a).put("secret", &b"x"[..], 1, "", true).await;
    assert!(matches!(again, Err(Error::BlobAlreadyExists)), "{again:?}");
    // A reader that yields fewer bytes than announced stores nothing.
    let short = bm(&a).put("short", &b"abc"[..], 10, "", true).await;
    assert!(matches!(short, Err(Error::Crypto(_))), "{short:?}");
    assert_eq!(bm(&a).sync_status("short", "").await.unwrap(), None);
    assert!(matches!(
        bm(&a).put("../x", &b""[..], 0, "", true).await,
        Err(Error::InvalidBlobId)
    ));
    // Survives a reopen; leftovers of a crash are removed.
    a.close().await.unwrap();
    let store_dir = home.join(format!("{UUID}_blobs"));
    std::fs::write(store_dir.join("tmp-deadbeef"), b"half written").unwrap();
    std::fs::write(store_dir.join("0123.blob"), b"orphan").unwrap();
    let a = device(&env, "a").await;
    assert_eq!(get(&a, "secret", "").await, marker);
    let mut left: Vec<_> = files_under(&store_dir);
    left.sort();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[tokio::test]
async fn put_on_a_get_on_b_byte_identical() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    let big = data(1, 300_000);
    bm(&a)
        .put("big", &big[..], big.len() as u64, "", false)
        .await
        .unwrap();
    assert_eq!(
        bm(&a).sync_status("big", "").await.unwrap(),
        Some(SyncStatus::Synced)
    );
    for n in 0..3u8 {
        let small = data(10 + u64::from(n), 1000 * usize::from(n));
        bm(&a)
            .put(
                &format!("small{n}"),
                &small[..],
                small.len() as u64,
                "",
                false,
            )
            .await
            .unwrap();
    }
    let mut watch = bm(&b).watch_progress();
    watch.borrow_and_update();
    assert_eq!(get(&b, "big", "").await, big);
    // The watcher was told, without polling, and holds the latest totals.
    assert!(watch.has_changed().unwrap());
    let seen = watch.borrow_and_update().clone();
    assert_eq!((seen.done, seen.failed), (1, 0), "{seen:?}");
    assert!(seen.done_bytes > 300_000, "{seen:?}");
    assert_eq!(seen, bm(&b).sync_progress());
    assert_eq!(
        bm(&b).sync_status("big", "").await.unwrap(),
        Some(SyncStatus::Synced)
    );
    let report = bm(&b).sync("").await.unwrap();
    assert_eq!(report.downloaded, ["small0", "small1", "small2"]);
    assert!(report.failed.is_empty(), "{report:?}");
    for n in 0..3u8 {
        let small = data(10 + u64::from(n), 1000 * usize::from(n));
        assert_eq!(get(&b, &format!("small{n}"), "").await, small);
    }
    let progress = bm(&b).sync_progress();
    assert_eq!((progress.done, progress.failed), (4, 0));
    assert!(progress.done_bytes > 300_000, "{progress:?}");
    assert!(progress.transfers.is_empty());
    assert!(bm(&b).get("nothing", "").await.unwrap().is_none());
    assert_eq!(bm(&b).sync_status("nothing", "").await.unwrap(), None);
    // Delete on B removes it everywhere; A drops it at its next sync.
    bm(&b).delete("big", "").await.unwrap();
    assert!(bm(&b).get("big", "").await.unwrap().is_none());
    bm(&a).sync("").await.unwrap();
    assert_eq!(bm(&a).sync_status("big", "").await.unwrap(), None);
    assert!(matches!(
        bm(&a).delete("big", "").await,
        Err(Error::BlobNotFound)
    ));
}

#[tokio::test]
async fn namespaces_and_flags_round_trip() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    bm(&a)
        .put("same", &b"in default"[..], 10, "", false)
        .await
        .unwrap();
    bm(&a)
        .put("same", &b"in photos"[..], 9, "photos", false)
        .await
        .unwrap();
    bm(&a)
        .put("other", &b"o"[..], 1, "photos", false)
        .await
        .unwrap();
    assert_eq!(get(&b, "same", "").await, b"in default");
    assert_eq!(get(&b, "same", "photos").await, b"in photos");
    let photos = RemoteListQuery {
        namespace: "photos".to_owned(),
        ..RemoteListQuery::default()
    };
    let mut listed = bm(&b).remote_list(&photos).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["other", "same"]);
    assert_eq!(bm(&b).count("photos").await.unwrap(), 2);
    assert_eq!(bm(&b).count("").await.unwrap(), 1);
    assert_eq!(bm(&b).count("empty").await.unwrap(), 0);
    let newest_first = bm(&b)
        .remote_list(&RemoteListQuery {
            order_by: Some(Order::DateDescending),
            ..photos.clone()
        })
        .await
        .unwrap();
    assert_eq!(newest_first.len(), 2);

    bm(&a)
        .set_flags("other", &[Flag::Processing], "photos")
        .await
        .unwrap();
    assert_eq!(
        bm(&b).get_flags("other", "photos").await.unwrap(),
        [Flag::Processing]
    );
    assert!(bm(&b).get_flags("same", "photos").await.unwrap().is_empty());
    let flagged = RemoteListQuery {
        filter_flag: Some(Flag::Processing),
        ..photos.clone()
    };
    assert_eq!(bm(&b).remote_list(&flagged).await.unwrap(), ["other"]);
    assert_eq!(bm(&b).remote_count(&flagged).await.unwrap(), 1);
    assert!(matches!(
        bm(&b).get_flags("missing", "photos").await,
        Err(Error::BlobNotFound)
    ));
    assert!(matches!(
        bm(&b).set_flags("missing", &[Flag::Failed], "photos").await,
        Err(Error::BlobNotFound)
    ));
    // Another device's blob under the same id is not overwritten.
    let clash = bm(&b).put("other", &b"mine"[..], 4, "photos", false).await;
    assert!(matches!(clash, Err(Error::BlobAlreadyExists)), "{clash:?}");
    assert_eq!(
        bm(&b).sync_status("other", "photos").await.unwrap(),
        Some(SyncStatus::FailedUpload)
    );
    assert_eq!(get(&a, "other", "photos").await, b"o");
    bm(&b).delete("other", "photos").await.unwrap();
    // Deleting one namespace's blob leaves the other's.
    bm(&b).delete("same", "photos").await.unwrap();
    let deleted = bm(&b)
        .remote_list(&RemoteListQuery {
            deleted: true,
            ..photos
        })
        .await
        .unwrap();
    assert_eq!(deleted, ["other", "same"]);
    assert_eq!(get(&a, "same", "").await, b"in default");
}

#[tokio::test]
async fn local_only_never_leaves_the_device() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let marker = data(7, 5000);
    bm(&a)
        .put("private", &marker[..], marker.len() as u64, "", true)
        .await
        .unwrap();
    bm(&a).put("shared", &b"s"[..], 1, "", false).await.unwrap();
    let report = bm(&a).sync("").await.unwrap();
    assert!(report.uploaded.is_empty(), "{report:?}");
    assert_eq!(
        bm(&a)
            .remote_list(&RemoteListQuery::default())
            .await
            .unwrap(),
        ["shared"]
    );
    assert!(!server_blob(&env, "default", "private").exists());
    let server_files = files_under(env.files().blobs_dir());
    assert!(
        server_files
            .iter()
            .all(|f| !f.to_string_lossy().contains("private")),
        "{server_files:?}"
    );
    assert_eq!(
        bm(&a).sync_status("private", "").await.unwrap(),
        Some(SyncStatus::LocalOnly)
    );
    // Deleting a local-only blob never asks the server.
    bm(&a).delete("private", "").await.unwrap();
    assert!(bm(&a).get("private", "").await.unwrap().is_none());
}

#[tokio::test]
async fn tampered_blob_fails_download_and_the_next_blobs_still_arrive() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    for n in 1..=3u64 {
        let content = data(n, 100_000);
        bm(&a)
            .put(
                &format!("b{n}"),
                &content[..],
                content.len() as u64,
                "",
                false,
            )
            .await
            .unwrap();
    }
    env.files().flip_blob_byte(UUID, "default", "b2").unwrap();
    let bytes = std::fs::read(server_blob(&env, "default", "b2")).unwrap();

    let report = bm(&b).fetch_missing("").await.unwrap();
    assert_eq!(report.downloaded, ["b1", "b3"]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "b2");
    assert_eq!(
        bm(&b).sync_status("b2", "").await.unwrap(),
        Some(SyncStatus::FailedDownload)
    );
    assert_eq!(
        bm(&b)
            .local_list_status(SyncStatus::FailedDownload, "")
            .await
            .unwrap(),
        ["b2"]
    );
    assert_eq!(get(&b, "b3", "").await, data(3, 100_000));
    // Asked explicitly, it is tried again and still refused.
    let again = bm(&b).get("b2", "").await;
    assert!(matches!(again, Err(Error::Integrity { .. })), "{again:?}");
    // A failed MAC is final: a fetch does not try it again.
    let report = bm(&b).fetch_missing("").await.unwrap();
    assert!(
        report.failed.is_empty() && report.downloaded.is_empty(),
        "{report:?}"
    );
    // No tampered byte was kept on B.
    let b_files = files_under(&env.home("b").join(format!("{UUID}_blobs")));
    assert!(b_files.iter().all(|f| std::fs::read(f).unwrap() != bytes));
}

#[tokio::test]
async fn retries_stop_at_the_configured_maximum() {
    let mut env = Env::start().await;
    let a = device_at(&env, "a", &env.url(), fast(3)).await;
    let b = device_at(&env, "b", &env.url(), fast(2)).await;
    let c = device_at(&env, "c", &env.url(), fast(0)).await;
    bm(&a).put("there", &b"t"[..], 1, "", false).await.unwrap();
    bm(&b).refresh_sync_status_from_server("").await.unwrap();
    assert_eq!(
        bm(&b).sync_status("there", "").await.unwrap(),
        Some(SyncStatus::PendingDownload)
    );
    env.stop().await;

    let started = std::time::Instant::now();
    let put = bm(&a).put("offline", &b"o"[..], 1, "", false).await;
    assert!(
        matches!(put, Err(Error::MaximumRetries { attempts: 4, .. })),
        "{put:?}"
    );
    assert_eq!(
        bm(&a).sync_status("offline", "").await.unwrap(),
        Some(SyncStatus::FailedUpload)
    );
    let got = bm(&b).get("there", "").await;
    assert!(
        matches!(got, Err(Error::MaximumRetries { attempts: 3, .. })),
        "{got:?}"
    );
    assert_eq!(
        bm(&b).sync_status("there", "").await.unwrap(),
        Some(SyncStatus::FailedDownload)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // With retries disabled the error says the transfer may be retried.
    let once = bm(&c).put("again", &b"a"[..], 1, "", false).await;
    assert!(matches!(once, Err(Error::RetriableTransfer(_))), "{once:?}");

    env.restart().await;
    let report = bm(&a).send_missing("").await.unwrap();
    assert_eq!(report.uploaded, ["offline"]);
    let report = bm(&c).send_missing("").await.unwrap();
    assert_eq!(report.uploaded, ["again"]);
    assert_eq!(get(&b, "there", "").await, b"t");
}

#[tokio::test]
async fn quota_refusal_leaves_nothing_half_written() {
    let env = Env::start_with(&[("quota_bytes", "65536")]).await;
    let a = device(&env, "a").await;
    let content = data(5, 200_000);
    let put = bm(&a)
        .put("huge", &content[..], content.len() as u64, "", false)
        .await;
    assert!(
        matches!(
            put,
            Err(Error::Server {
                kind: Some(ErrorKind::QuotaExceeded),
                ..
            })
        ),
        "{put:?}"
    );
    assert!(
        bm(&a)
            .remote_list(&RemoteListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    let server_files = files_under(env.files().blobs_dir());
    assert!(server_files.is_empty(), "{server_files:?}");
    // The local copy is whole, waiting to be sent again.
    assert_eq!(
        bm(&a).sync_status("huge", "").await.unwrap(),
        Some(SyncStatus::FailedUpload)
    );
    assert_eq!(get(&a, "huge", "").await, content);
    // A blob that fits still goes through.
    bm(&a).put("fits", &b"ok"[..], 2, "", false).await.unwrap();
    assert_eq!(
        bm(&a)
            .remote_list(&RemoteListQuery::default())
            .await
            .unwrap(),
        ["fits"]
    );
}

/// A TCP relay that, after a budget of server-to-client bytes, SIGKILLs the
/// server and cuts the connection there.
struct Proxy {
    addr: std::net::SocketAddr,
    /// Server-to-client bytes left before cutting; negative: no limit.
    budget: Arc<AtomicI64>,
    /// Server-to-client bytes relayed.
    relayed: Arc<AtomicU64>,
    /// Killed when the budget runs out.
    victim: Arc<std::sync::Mutex<Option<Killer>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let budget = Arc::new(AtomicI64::new(-1));
        let relayed = Arc::new(AtomicU64::new(0));
        let victim = Arc::new(std::sync::Mutex::new(None::<Killer>));
        let (b, r, v) = (budget.clone(), relayed.clone(), victim.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (b, r, v) = (b.clone(), r.clone(), v.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                        let _ = sw.shutdown().await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let left = b.load(Ordering::SeqCst);
                        let (n, cut) = if left >= 0 {
                            let left = usize::try_from(left).unwrap();
                            let allowed = n.min(left);
                            b.fetch_sub(allowed as i64, Ordering::SeqCst);
                            (allowed, allowed == left)
                        } else {
                            (n, false)
                        };
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        r.fetch_add(n as u64, Ordering::SeqCst);
                        if cut {
                            if let Some(killer) = v.lock().unwrap().take() {
                                killer.kill();
                            }
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Proxy {
            addr,
            budget,
            relayed,
            victim,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

#[tokio::test]
async fn cut_download_resumes_with_range_after_a_server_restart() {
    let mut env = Env::start().await;
    let a = device(&env, "a").await;
    let size = 3 << 20;
    let content = data(9, size);
    bm(&a)
        .put("movie", &content[..], size as u64, "", false)
        .await
        .unwrap();
    let proxy = Proxy::start(env.server.users_addr()).await;
    let b = device_at(&env, "b", &proxy.url(), fast(0)).await;
    bm(&b).refresh_sync_status_from_server("").await.unwrap();

    // After 1 MiB of the download the server is SIGKILLed.
    *proxy.victim.lock().unwrap() = Some(env.server.killer());
    proxy.budget.store(1 << 20, Ordering::SeqCst);
    let cut = bm(&b).get("movie", "").await;
    assert!(matches!(cut, Err(Error::RetriableTransfer(_))), "{cut:?}");
    assert!(
        !env.server.is_running(),
        "the server was killed mid-download"
    );
    let parts: Vec<u64> = files_under(&env.home("b").join(format!("{UUID}_blobs")))
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "part"))
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    assert_eq!(parts.len(), 1, "partial download kept");
    assert!(parts[0] > 256 * 1024 && parts[0] < 1 << 20, "{parts:?}");

    env.restart().await;
    proxy.budget.store(-1, Ordering::SeqCst);
    proxy.relayed.store(0, Ordering::SeqCst);
    // The next fetch resumes it (a cut download is not final, unlike a bad MAC).
    let report = bm(&b).fetch_missing("").await.unwrap();
    assert_eq!(report.downloaded, ["movie"], "{report:?}");
    assert_eq!(get(&b, "movie", "").await, content);
    let second = proxy.relayed.load(Ordering::SeqCst);
    assert!(
        second < (size as u64) - parts[0] + 64 * 1024,
        "resumed download relayed {second} bytes"
    );
    assert_eq!(
        bm(&b).sync_status("movie", "").await.unwrap(),
        Some(SyncStatus::Synced)
    );
}

#[tokio::test]
async fn transfers_respect_the_concurrency_limit() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device_at(
        &env,
        "b",
        &env.url(),
        BlobConfig {
            concurrent_transfers: 2,
            ..fast(2)
        },
    )
    .await;
    for n in 0..12u64 {
        let content = data(100 + n, 200_000);
        bm(&a)
            .put(
                &format!("c{n:02}"),
                &content[..],
                content.len() as u64,
                "",
                false,
            )
            .await
            .unwrap();
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (b, done) = (b.clone(), done.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::SeqCst) {
                most = most.max(bm(&b).sync_progress().transfers.len());
                tokio::task::yield_now().await;
            }
            most
        })
    };
    let report = bm(&b).fetch_missing("").await.unwrap();
    done.store(true, Ordering::SeqCst);
    let most = watcher.await.unwrap();
    assert_eq!(report.downloaded.len(), 12);
    assert!(most <= 2, "{most} transfers at once");
    for n in 0..12u64 {
        assert_eq!(
            get(&b, &format!("c{n:02}"), "").await,
            data(100 + n, 200_000)
        );
    }
}

#[tokio::test]
async fn a_get_racing_a_fetch_of_the_same_blob_downloads_it_once() {
    let env = Env::start().await;
    let a = device(&env, "a").await;
    let b = device(&env, "b").await;
    let content = data(77, 1 << 20);
    bm(&a)
        .put("race", &content[..], content.len() as u64, "", false)
        .await
        .unwrap();
    bm(&b).refresh_sync_status_from_server("").await.unwrap();
    let (got, fetched) = tokio::join!(get(&b, "race", ""), bm(&b).fetch_missing(""));
    assert_eq!(got, content);
    let fetched = fetched.unwrap();
    assert!(fetched.failed.is_empty(), "{fetched:?}");
    assert_eq!(
        bm(&b).sync_status("race", "").await.unwrap(),
        Some(SyncStatus::Synced)
    );
    assert_eq!(bm(&b).sync_progress().done, 1, "downloaded once");
}
