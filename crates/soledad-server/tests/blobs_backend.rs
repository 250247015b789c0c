#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The filesystem blob store (`FsBlobStore`) through its public API, on
//! temporary directories: what only this backend promises (the seed's layout
//! on disk, no file left by a failed upload, restarts, write permits). The
//! `BlobBackend` contract itself is the conformance suite
//! (`soledad_server::conformance::blobs`), run on this store by
//! `tests/storage`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use soledad_server::blobs::{
    BlobBackend, BlobError, BlobId, BlobRead, ByteStream, ENTRY_OVERHEAD_BYTES, Flag, FsBlobConfig,
    FsBlobStore, ListQuery, Namespace, Usage, UserId,
};
use soledad_server::conformance::blobs;
use tokio::sync::{mpsc, oneshot};

const NO_LIMIT: u64 = u64::MAX;
/// Quota cost of a tombstone (one file).
const E: u64 = ENTRY_OVERHEAD_BYTES;
/// Quota cost of a blob beyond its content: its content and flags files.
const BLOB: u64 = 2 * ENTRY_OVERHEAD_BYTES;

fn open(root: &Path, quota_bytes: u64, concurrent_blob_writes: usize) -> FsBlobStore {
    FsBlobStore::open(FsBlobConfig {
        root: root.to_path_buf(),
        concurrent_blob_writes,
        per_user_blob_writes: concurrent_blob_writes,
        quota_bytes,
        deleted_retention: soledad_server::DEFAULT_DELETED_BLOB_RETENTION,
    })
    .unwrap()
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn id(s: &str) -> BlobId {
    BlobId::parse(s).unwrap()
}

/// `data` as an upload body in chunks of `chunk` bytes.
fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

async fn read_all(read: BlobRead) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn put_bytes(
    store: &FsBlobStore,
    u: &UserId,
    n: &Namespace,
    b: &BlobId,
    data: &[u8],
    flags: &[Flag],
) -> Result<u64, BlobError> {
    store
        .put(u, n, b, body(data, 1000), Some(data.len() as u64), flags)
        .await
}

async fn get_bytes(store: &FsBlobStore, u: &UserId, n: &Namespace, b: &BlobId) -> Vec<u8> {
    read_all(store.get(u, n, b, None).await.unwrap()).await
}

/// Every regular file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

async fn used(store: &FsBlobStore, u: &UserId) -> u64 {
    store.usage(u).await.unwrap().used_bytes
}

#[tokio::test]
async fn layout_on_disk_matches_the_seed_example() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let u = user("some-user-id");
    put_bytes(
        &store,
        &u,
        &Namespace::default(),
        &id("some-blob-id"),
        b"x",
        &[],
    )
    .await
    .unwrap();
    put_bytes(
        &store,
        &u,
        &Namespace::incoming(),
        &id("ab"),
        b"yz",
        &[Flag::Pending],
    )
    .await
    .unwrap();
    let leaf = dir.path().join("some-user-id/default/s/som/some-b");
    assert_eq!(std::fs::read(leaf.join("some-blob-id")).unwrap(), b"x");
    assert_eq!(
        std::fs::read_to_string(leaf.join("some-blob-id.flags")).unwrap(),
        "[]"
    );
    let short = dir.path().join("some-user-id/MX/a/ab/ab");
    assert_eq!(std::fs::read(short.join("ab")).unwrap(), b"yz");
    assert_eq!(
        std::fs::read_to_string(short.join("ab.flags")).unwrap(),
        "[\"PENDING\"]"
    );
    let files: BTreeSet<PathBuf> = [
        "some-user-id/default/s/som/some-b/some-blob-id",
        "some-user-id/default/s/som/some-b/some-blob-id.flags",
        "some-user-id/MX/a/ab/ab/ab",
        "some-user-id/MX/a/ab/ab/ab.flags",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(
        files_under(dir.path()),
        files,
        "no other file (temp files removed)"
    );
}

#[test]
fn invalid_names_and_traversal_attempts_are_rejected_by_the_parsers() {
    let bad = [
        "",
        ".",
        "..",
        "../x",
        "..\\x",
        "a/b",
        "/etc/passwd",
        "a\\b",
        "%2e%2e",
        "a%2Fb",
        "a\0b",
        "a.b",
        "some.flags",
        "x.deleted",
        ".tmp",
        "é",
        "a b",
        "a\nb",
    ];
    for s in bad {
        assert!(
            matches!(BlobId::parse(s), Err(BlobError::InvalidBlobId)),
            "blob id {s:?}"
        );
        assert!(
            matches!(UserId::parse(s), Err(BlobError::InvalidUserId)),
            "user id {s:?}"
        );
        assert!(
            matches!(Namespace::parse(s), Err(BlobError::InvalidNamespace)),
            "namespace {s:?}"
        );
    }
    assert!(matches!(
        BlobId::parse(&"a".repeat(129)),
        Err(BlobError::InvalidBlobId)
    ));
    assert!(BlobId::parse(&"a".repeat(128)).is_ok());
    assert!(matches!(
        UserId::parse(&"u".repeat(65)),
        Err(BlobError::InvalidUserId)
    ));
    assert!(matches!(
        Namespace::parse(&"n".repeat(65)),
        Err(BlobError::InvalidNamespace)
    ));
    assert!(matches!(
        Flag::parse("pending"),
        Err(BlobError::InvalidFlag)
    ));
    assert!(matches!(
        Flag::parse("DELETED"),
        Err(BlobError::InvalidFlag)
    ));
    assert_eq!(Flag::parse("PROCESSING").unwrap(), Flag::Processing);
    let good = BlobId::parse("D-0123_abcXYZ").unwrap();
    assert_eq!(good.as_str(), "D-0123_abcXYZ");
}

#[tokio::test]
async fn reopening_keeps_blobs_flags_tombstones_and_usage_and_cleans_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    // Room for three blobs at once; the 9001-byte put at the end misses by one.
    const LIMIT: u64 = 10_000 + 3 * BLOB;
    let (u, mx, d) = (user("alice"), Namespace::incoming(), Namespace::default());
    {
        let store = open(dir.path(), LIMIT, 2);
        put_bytes(&store, &u, &mx, &id("m1"), &[1; 1000], &[Flag::Pending])
            .await
            .unwrap();
        put_bytes(&store, &u, &d, &id("d1"), &[2; 2000], &[])
            .await
            .unwrap();
        put_bytes(&store, &u, &d, &id("d2"), &[3; 3000], &[])
            .await
            .unwrap();
        store.delete(&u, &d, &id("d2")).await.unwrap();
        store
            .set_flags(&u, &mx, &id("m1"), vec![Flag::Processed])
            .await
            .unwrap();
        put_bytes(&store, &user("bob"), &d, &id("b1"), &[4; 500], &[])
            .await
            .unwrap();
        assert_eq!(used(&store, &u).await, 3000 + 2 * BLOB + E);
    }
    // A crash mid-upload left a temporary file behind.
    let stale = dir.path().join(".tmp").join("0123456789abcdef.part");
    std::fs::write(&stale, vec![9u8; 4096]).unwrap();

    let store = open(dir.path(), LIMIT, 2);
    assert!(!stale.exists(), "stale temp file removed at open");
    assert_eq!(
        store.usage(&u).await.unwrap(),
        Usage {
            used_bytes: 3000 + 2 * BLOB + E,
            limit_bytes: LIMIT
        }
    );
    assert_eq!(used(&store, &user("bob")).await, 500 + BLOB);
    assert_eq!(get_bytes(&store, &u, &mx, &id("m1")).await, vec![1; 1000]);
    assert_eq!(get_bytes(&store, &u, &d, &id("d1")).await, vec![2; 2000]);
    assert_eq!(
        store.get_flags(&u, &mx, &id("m1")).await.unwrap(),
        vec![Flag::Processed]
    );
    let deleted = ListQuery {
        deleted: true,
        ..ListQuery::default()
    };
    assert_eq!(store.list(&u, &deleted).await.unwrap(), vec!["d2"]);
    // Usage keeps being tracked from the measured value.
    store.delete(&u, &d, &id("d1")).await.unwrap();
    assert_eq!(used(&store, &u).await, 1000 + BLOB + 2 * E);
    let err = put_bytes(&store, &u, &d, &id("big"), &[0; 9001], &[]).await;
    assert!(
        matches!(
            err,
            Err(BlobError::QuotaExceeded { used_bytes, .. }) if used_bytes == 1000 + BLOB + 2 * E
        ),
        "{err:?}"
    );
}

/// An upload body that records how many uploads hold a write permit at once:
/// it yields a first chunk at once (the permit is taken only after it), then
/// waits for `go`, yields a second chunk and ends.
fn tracked_body(
    index: usize,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
    started: mpsc::UnboundedSender<usize>,
    go: oneshot::Receiver<()>,
) -> ByteStream {
    let first = stream::once(async move { Ok(Bytes::from(vec![index as u8; 50])) });
    let second = stream::unfold(Some(go), move |go| {
        let (active, max_active, started) = (
            Arc::clone(&active),
            Arc::clone(&max_active),
            started.clone(),
        );
        async move {
            let go = go?;
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            max_active.fetch_max(now, Ordering::SeqCst);
            started.send(index).unwrap();
            // Wait for the test's go before the last chunk, so the upload
            // holds its write permit meanwhile.
            go.await.unwrap();
            active.fetch_sub(1, Ordering::SeqCst);
            Some((Ok(Bytes::from(vec![index as u8; 50])), None))
        }
    });
    Box::pin(first.chain(second))
}

#[tokio::test]
async fn concurrent_writes_limit_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 2);
    let active = Arc::new(AtomicUsize::new(0));
    let max_active = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let mut gos = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (go_tx, go_rx) = oneshot::channel();
        gos.push(Some(go_tx));
        let body = tracked_body(
            i,
            Arc::clone(&active),
            Arc::clone(&max_active),
            started_tx.clone(),
            go_rx,
        );
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put(
                    &user("alice"),
                    &Namespace::default(),
                    &id(&format!("w{i}")),
                    body,
                    None,
                    &[],
                )
                .await
        }));
    }
    // Two uploads run at once; each time one finishes, one more may start.
    let mut running = vec![
        started_rx.recv().await.unwrap(),
        started_rx.recv().await.unwrap(),
    ];
    assert_eq!(max_active.load(Ordering::SeqCst), 2);
    let mut finished = 0;
    while let Some(i) = running.pop() {
        gos[i].take().unwrap().send(()).unwrap();
        finished += 1;
        if finished <= 3 {
            running.push(started_rx.recv().await.unwrap());
        }
        assert!(active.load(Ordering::SeqCst) <= 2);
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 100);
    }
    assert_eq!(
        max_active.load(Ordering::SeqCst),
        2,
        "never more than 2 bodies read at once"
    );
    assert_eq!(
        store
            .list(&user("alice"), &ListQuery::default())
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn stalled_uploads_of_one_user_leave_permits_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(FsBlobConfig {
        root: dir.path().to_path_buf(),
        concurrent_blob_writes: 3,
        per_user_blob_writes: 1,
        quota_bytes: NO_LIMIT,
        deleted_retention: soledad_server::DEFAULT_DELETED_BLOB_RETENTION,
    })
    .unwrap();
    let mut stalled = Vec::new();
    for i in 0..6 {
        // Half send one byte and stall, half send nothing at all.
        let body: ByteStream = if i % 2 == 0 {
            Box::pin(stream::once(async { Ok(Bytes::from_static(b"x")) }).chain(stream::pending()))
        } else {
            Box::pin(stream::pending())
        };
        let store = store.clone();
        stalled.push(tokio::spawn(async move {
            store
                .put(
                    &user("alice"),
                    &Namespace::default(),
                    &id(&format!("s{i}")),
                    body,
                    Some(10),
                    &[],
                )
                .await
        }));
    }
    for who in ["bob", "carol", "dave"] {
        let body: ByteStream = Box::pin(stream::once(async { Ok(Bytes::from_static(b"hello")) }));
        let (who, ns, x) = (user(who), Namespace::default(), id("x"));
        let put = store.put(&who, &ns, &x, body, Some(5), &[]);
        let stored = tokio::time::timeout(std::time::Duration::from_secs(5), put)
            .await
            .expect("another user's upload must not wait for alice's stalled ones")
            .unwrap();
        assert_eq!(stored, 5);
    }
    for task in stalled {
        task.abort();
    }
}

/// Hands out the store at one known root, so a test can look at the disk
/// after a conformance case.
struct At(PathBuf);

impl blobs::Factory for At {
    fn fresh(&self, quota_bytes: u64) -> BoxFuture<'_, Arc<dyn BlobBackend>> {
        let store = open(&self.0, quota_bytes, 4);
        Box::pin(async move { Arc::new(store) as Arc<dyn BlobBackend> })
    }
}

/// The files under `root` are exactly the content and flags files of
/// `ids`: no temporary file, nothing of a failed upload.
fn assert_only_blobs(root: &Path, ids: &[&str]) {
    let mut names: Vec<String> = files_under(root)
        .iter()
        .map(|path| {
            assert!(!path.starts_with(".tmp"), "temporary file left: {path:?}");
            path.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .flat_map(|id| [id.to_string(), format!("{id}.flags")])
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn lookups_of_missing_blobs_create_no_file() {
    let dir = tempfile::tempdir().unwrap();
    blobs::missing_blobs_are_not_found(&At(dir.path().to_path_buf())).await;
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn refused_uploads_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    blobs::quota_exceeded_up_front_never_reads_the_body(&At(dir.path().to_path_buf())).await;
    assert_only_blobs(dir.path(), &["a", "c"]);
    let dir = tempfile::tempdir().unwrap();
    blobs::quota_exceeded_mid_stream_stores_nothing(&At(dir.path().to_path_buf())).await;
    assert_only_blobs(dir.path(), &["a", "huge"]);
}

#[tokio::test]
async fn failed_and_dropped_uploads_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    blobs::a_failed_body_stores_nothing(&At(dir.path().to_path_buf())).await;
    assert_only_blobs(dir.path(), &["cut"]);
    let dir = tempfile::tempdir().unwrap();
    blobs::a_put_dropped_half_way_leaves_nothing(&At(dir.path().to_path_buf())).await;
    assert_only_blobs(dir.path(), &["dropped"]);
}
