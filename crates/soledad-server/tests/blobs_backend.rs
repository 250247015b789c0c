#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The server's blob storage (`soledad_server::blobs`) through its public API,
//! on temporary directories.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use soledad_server::blobs::{
    BlobBackend, BlobError, BlobId, BlobRead, ByteStream, ENTRY_OVERHEAD_BYTES, Flag, FsBlobConfig,
    FsBlobStore, ListQuery, Namespace, Order, RangeSpec, Usage, UserId,
};
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

fn ns(s: &str) -> Namespace {
    Namespace::parse(s).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so contents differ per offset.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `data` as an upload body in chunks of `chunk` bytes.
fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

/// A body of `total` pattern bytes generated lazily, `chunk` at a time.
fn generated_body(total: usize, chunk: usize, seed: u64) -> ByteStream {
    Box::pin(stream::unfold(
        (0usize, seed),
        move |(sent, seed)| async move {
            if sent >= total {
                return None;
            }
            let n = chunk.min(total - sent);
            Some((Ok(Bytes::from(pattern(n, seed))), (sent + n, seed + 1)))
        },
    ))
}

/// A body fed through a channel, and the sender feeding it.
fn channel_body() -> (mpsc::Sender<io::Result<Bytes>>, ByteStream) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Box::pin(body))
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
async fn round_trips_small_and_multi_megabyte_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 4);
    let (u, d) = (user("alice"), Namespace::default());

    let small = b"hello blobs".to_vec();
    assert_eq!(
        put_bytes(&store, &u, &d, &id("small"), &small, &[])
            .await
            .unwrap(),
        11
    );
    let read = store.get(&u, &d, &id("small"), None).await.unwrap();
    assert_eq!((read.total_size, read.start, read.len), (11, 0, 11));
    assert_eq!(read_all(read).await, small);

    let empty = store
        .put(&u, &d, &id("empty"), body(&[], 1), Some(0), &[])
        .await
        .unwrap();
    assert_eq!(empty, 0);
    assert!(get_bytes(&store, &u, &d, &id("empty")).await.is_empty());

    // 5 MiB streamed without a length, generated chunk by chunk.
    let total = 5 * 1024 * 1024;
    let chunk = 64 * 1024;
    let stored = store
        .put(
            &u,
            &d,
            &id("big"),
            generated_body(total, chunk, 7),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stored, total as u64);
    let expected: Vec<u8> = (0..total / chunk)
        .flat_map(|i| pattern(chunk, 7 + i as u64))
        .collect();
    let read = store.get(&u, &d, &id("big"), None).await.unwrap();
    assert_eq!(read.len, total as u64);
    let got = read_all(read).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "multi-MB content differs");
    assert_eq!(used(&store, &u).await, 11 + total as u64 + 3 * BLOB);
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

#[tokio::test]
async fn duplicate_put_is_already_exists_and_keeps_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 2);
    let (u, d, b) = (user("alice"), Namespace::default(), id("dup"));
    put_bytes(&store, &u, &d, &b, b"first", &[Flag::Processed])
        .await
        .unwrap();
    let err = put_bytes(&store, &u, &d, &b, b"second!", &[Flag::Failed]).await;
    assert!(matches!(err, Err(BlobError::AlreadyExists)), "{err:?}");
    assert_eq!(get_bytes(&store, &u, &d, &b).await, b"first");
    assert_eq!(
        store.get_flags(&u, &d, &b).await.unwrap(),
        vec![Flag::Processed]
    );
    assert_eq!(used(&store, &u).await, 5 + BLOB);
}

#[tokio::test]
async fn a_put_while_another_of_the_same_id_is_in_flight_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 4);
    let (u, d, b) = (user("alice"), Namespace::default(), id("race"));
    let (tx, slow_body) = channel_body();
    let first = store.put(&u, &d, &b, slow_body, None, &[]);
    tx.send(Ok(Bytes::from_static(b"winner"))).await.unwrap();
    let second = async {
        // The first upload is in flight (its body is still open).
        let result = put_bytes(&store, &u, &d, &b, b"loser", &[]).await;
        drop(tx);
        result
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap(), 6);
    assert!(
        matches!(second, Err(BlobError::AlreadyExists)),
        "{second:?}"
    );
    assert_eq!(get_bytes(&store, &u, &d, &b).await, b"winner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicate_puts_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 8);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let data = vec![i; 10_000 + usize::from(i)];
            let result = put_bytes(
                &store,
                &user("alice"),
                &Namespace::default(),
                &id("same"),
                &data,
                &[],
            )
            .await;
            (i, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(_)) => winners.push(i),
            (_, Err(BlobError::AlreadyExists)) => {}
            (_, Err(other)) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one upload wins");
    let w = winners[0];
    let got = get_bytes(&store, &user("alice"), &Namespace::default(), &id("same")).await;
    assert_eq!(got, vec![w; 10_000 + usize::from(w)]);
    assert_eq!(used(&store, &user("alice")).await, got.len() as u64 + BLOB);
}

#[tokio::test]
async fn ranges_from_to_suffix_and_unsatisfiable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let (u, d, b) = (user("alice"), Namespace::default(), id("ranged"));
    let data = pattern(200_000, 3);
    put_bytes(&store, &u, &d, &b, &data, &[]).await.unwrap();

    let cases = [
        (
            RangeSpec::From {
                start: 10,
                end_inclusive: Some(19),
            },
            10usize,
            10usize,
        ),
        (
            RangeSpec::From {
                start: 150_000,
                end_inclusive: None,
            },
            150_000,
            50_000,
        ),
        (
            RangeSpec::From {
                start: 199_999,
                end_inclusive: Some(500_000),
            },
            199_999,
            1,
        ),
        (RangeSpec::Suffix { len: 100 }, 199_900, 100),
        (RangeSpec::Suffix { len: 1_000_000 }, 0, 200_000),
    ];
    for (range, start, len) in cases {
        let read = store.get(&u, &d, &b, Some(range)).await.unwrap();
        assert_eq!(
            (read.total_size, read.start, read.len),
            (200_000, start as u64, len as u64),
            "{range:?}"
        );
        assert_eq!(read_all(read).await, &data[start..start + len], "{range:?}");
    }
    for bad in [
        RangeSpec::From {
            start: 200_000,
            end_inclusive: None,
        },
        RangeSpec::From {
            start: 20,
            end_inclusive: Some(10),
        },
        RangeSpec::Suffix { len: 0 },
    ] {
        let err = store.get(&u, &d, &b, Some(bad)).await;
        assert!(
            matches!(err, Err(BlobError::RangeNotSatisfiable { size: 200_000 })),
            "{bad:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn missing_blobs_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let (u, d, b) = (user("alice"), Namespace::default(), id("nothing"));
    assert!(matches!(
        store.get(&u, &d, &b, None).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.delete(&u, &d, &b).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.get_flags(&u, &d, &b).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.set_flags(&u, &d, &b, vec![Flag::Pending]).await,
        Err(BlobError::NotFound)
    ));
    assert!(
        store
            .list(&u, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count(&u, &ListQuery::default()).await.unwrap(), 0);
    assert!(files_under(dir.path()).is_empty(), "lookups create no file");
}

#[tokio::test]
async fn flags_initial_get_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let (u, mx) = (user("alice"), Namespace::incoming());
    put_bytes(&store, &u, &mx, &id("m1"), b"mail", &[Flag::Pending])
        .await
        .unwrap();
    put_bytes(&store, &u, &mx, &id("m2"), b"mail", &[])
        .await
        .unwrap();
    assert_eq!(
        store.get_flags(&u, &mx, &id("m1")).await.unwrap(),
        vec![Flag::Pending]
    );
    assert!(
        store
            .get_flags(&u, &mx, &id("m2"))
            .await
            .unwrap()
            .is_empty()
    );

    store
        .set_flags(
            &u,
            &mx,
            &id("m1"),
            vec![Flag::Processing, Flag::Failed, Flag::Processing],
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_flags(&u, &mx, &id("m1")).await.unwrap(),
        vec![Flag::Processing, Flag::Failed],
        "replaced, duplicates dropped"
    );
    store.set_flags(&u, &mx, &id("m1"), vec![]).await.unwrap();
    assert!(
        store
            .get_flags(&u, &mx, &id("m1"))
            .await
            .unwrap()
            .is_empty()
    );
    // Flags are per namespace.
    assert!(matches!(
        store.get_flags(&u, &Namespace::default(), &id("m1")).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn delete_frees_quota_leaves_a_tombstone_and_allows_a_new_put() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let (u, d) = (user("alice"), Namespace::default());
    put_bytes(&store, &u, &d, &id("keep"), b"12345", &[])
        .await
        .unwrap();
    put_bytes(&store, &u, &d, &id("gone"), b"1234567", &[Flag::Pending])
        .await
        .unwrap();
    assert_eq!(used(&store, &u).await, 12 + 2 * BLOB);

    store.delete(&u, &d, &id("gone")).await.unwrap();
    // The tombstone costs an entry.
    assert_eq!(used(&store, &u).await, 5 + BLOB + E);
    assert!(matches!(
        store.get(&u, &d, &id("gone"), None).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.get_flags(&u, &d, &id("gone")).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.delete(&u, &d, &id("gone")).await,
        Err(BlobError::NotFound)
    ));

    let live = ListQuery::default();
    let deleted = ListQuery {
        deleted: true,
        ..ListQuery::default()
    };
    assert_eq!(store.list(&u, &live).await.unwrap(), vec!["keep"]);
    assert_eq!(store.list(&u, &deleted).await.unwrap(), vec!["gone"]);
    assert_eq!(store.count(&u, &deleted).await.unwrap(), 1);
    let pending_deleted = ListQuery {
        filter_flag: Some(Flag::Pending),
        ..deleted.clone()
    };
    assert!(
        store.list(&u, &pending_deleted).await.unwrap().is_empty(),
        "flags go with the content"
    );

    // Storing the id again revives it: live again, no longer listed as deleted.
    put_bytes(&store, &u, &d, &id("gone"), b"new", &[])
        .await
        .unwrap();
    assert_eq!(get_bytes(&store, &u, &d, &id("gone")).await, b"new");
    assert_eq!(store.list(&u, &live).await.unwrap(), vec!["gone", "keep"]);
    assert!(store.list(&u, &deleted).await.unwrap().is_empty());
    // The revived blob's tombstone is gone.
    assert_eq!(used(&store, &u).await, 8 + 2 * BLOB);
}

#[tokio::test]
async fn list_filters_orders_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let (u, mx) = (user("alice"), Namespace::incoming());
    // Uploaded in this order; ids deliberately not in upload order.
    let uploads = [
        ("c", Flag::Pending),
        ("a", Flag::Processed),
        ("d", Flag::Pending),
        ("b", Flag::Pending),
    ];
    for (name, flag) in uploads {
        put_bytes(&store, &u, &mx, &id(name), name.as_bytes(), &[flag])
            .await
            .unwrap();
    }
    let q = |filter_flag, order| ListQuery {
        namespace: Namespace::incoming(),
        filter_flag,
        order,
        deleted: false,
    };
    assert_eq!(
        store.list(&u, &q(None, None)).await.unwrap(),
        vec!["a", "b", "c", "d"]
    );
    assert_eq!(
        store
            .list(&u, &q(None, Some(Order::DateAscending)))
            .await
            .unwrap(),
        vec!["c", "a", "d", "b"]
    );
    assert_eq!(
        store
            .list(&u, &q(None, Some(Order::DateDescending)))
            .await
            .unwrap(),
        vec!["b", "d", "a", "c"]
    );
    assert_eq!(
        store
            .list(&u, &q(Some(Flag::Pending), Some(Order::DateAscending)))
            .await
            .unwrap(),
        vec!["c", "d", "b"]
    );
    assert_eq!(
        store
            .count(&u, &q(Some(Flag::Pending), None))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .count(&u, &q(Some(Flag::Processed), None))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.count(&u, &q(Some(Flag::Failed), None)).await.unwrap(),
        0
    );

    // Flag changes show in filtered listings.
    store
        .set_flags(&u, &mx, &id("c"), vec![Flag::Processing])
        .await
        .unwrap();
    assert_eq!(
        store.list(&u, &q(Some(Flag::Pending), None)).await.unwrap(),
        vec!["b", "d"]
    );
    assert_eq!(
        store
            .list(&u, &q(Some(Flag::Processing), None))
            .await
            .unwrap(),
        vec!["c"]
    );
}

#[tokio::test]
async fn namespaces_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let u = user("alice");
    let (n1, n2) = (ns("photos"), ns("mail"));
    put_bytes(&store, &u, &n1, &id("x"), b"in photos", &[])
        .await
        .unwrap();
    put_bytes(&store, &u, &n2, &id("x"), b"in mail", &[Flag::Pending])
        .await
        .unwrap();
    assert_eq!(get_bytes(&store, &u, &n1, &id("x")).await, b"in photos");
    assert_eq!(get_bytes(&store, &u, &n2, &id("x")).await, b"in mail");
    assert!(store.get_flags(&u, &n1, &id("x")).await.unwrap().is_empty());
    store.delete(&u, &n1, &id("x")).await.unwrap();
    assert_eq!(get_bytes(&store, &u, &n2, &id("x")).await, b"in mail");
    let list = |n: &Namespace, deleted| ListQuery {
        namespace: n.clone(),
        deleted,
        ..ListQuery::default()
    };
    assert!(store.list(&u, &list(&n1, false)).await.unwrap().is_empty());
    assert_eq!(store.list(&u, &list(&n1, true)).await.unwrap(), vec!["x"]);
    assert_eq!(store.list(&u, &list(&n2, false)).await.unwrap(), vec!["x"]);
    assert!(store.list(&u, &list(&n2, true)).await.unwrap().is_empty());
    assert!(
        store
            .list(&u, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Quota is per user, across namespaces.
    assert_eq!(used(&store, &u).await, 7 + BLOB + E);
}

#[tokio::test]
async fn users_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 100 + BLOB, 1);
    let (alice, bob, d) = (user("alice"), user("bob"), Namespace::default());
    put_bytes(&store, &alice, &d, &id("secret"), &[1; 60], &[])
        .await
        .unwrap();
    assert!(matches!(
        store.get(&bob, &d, &id("secret"), None).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.delete(&bob, &d, &id("secret")).await,
        Err(BlobError::NotFound)
    ));
    assert!(
        store
            .list(&bob, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Bob has his own quota and may use the same id.
    put_bytes(&store, &bob, &d, &id("secret"), &[2; 60], &[])
        .await
        .unwrap();
    assert_eq!(
        store.usage(&alice).await.unwrap(),
        Usage {
            used_bytes: 60 + BLOB,
            limit_bytes: 100 + BLOB
        }
    );
    assert_eq!(
        store.usage(&bob).await.unwrap(),
        Usage {
            used_bytes: 60 + BLOB,
            limit_bytes: 100 + BLOB
        }
    );
    assert_eq!(
        get_bytes(&store, &alice, &d, &id("secret")).await,
        vec![1; 60]
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
async fn quota_exceeded_up_front_never_reads_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000 + 2 * BLOB, 1);
    let (u, d) = (user("alice"), Namespace::default());
    put_bytes(&store, &u, &d, &id("a"), &[0; 600], &[])
        .await
        .unwrap();
    let before = files_under(dir.path());

    let polled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&polled);
    let body: ByteStream = Box::pin(stream::poll_fn(move |_| {
        flag.store(true, Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok(Bytes::from(vec![0u8; 500]))))
    }));
    let err = store.put(&u, &d, &id("b"), body, Some(500), &[]).await;
    assert!(
        matches!(
            err,
            Err(BlobError::QuotaExceeded {
                used_bytes,
                limit_bytes,
            }) if used_bytes == 600 + BLOB && limit_bytes == 1000 + 2 * BLOB
        ),
        "{err:?}"
    );
    assert!(
        !polled.load(Ordering::SeqCst),
        "body not read when the length is known to exceed"
    );
    assert_eq!(used(&store, &u).await, 600 + BLOB);
    assert_eq!(files_under(dir.path()), before);
    // Exactly up to the limit is fine.
    put_bytes(&store, &u, &d, &id("c"), &[0; 400], &[])
        .await
        .unwrap();
    assert_eq!(
        store.usage(&u).await.unwrap(),
        Usage {
            used_bytes: 1000 + 2 * BLOB,
            limit_bytes: 1000 + 2 * BLOB
        }
    );
}

#[tokio::test]
async fn quota_exceeded_mid_stream_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    const LIMIT: u64 = 100_000 + 2 * BLOB;
    let store = open(dir.path(), LIMIT, 1);
    let (u, d) = (user("alice"), Namespace::default());
    put_bytes(&store, &u, &d, &id("a"), &[0; 10_000], &[])
        .await
        .unwrap();
    let before = files_under(dir.path());
    let err = store
        .put(
            &u,
            &d,
            &id("huge"),
            generated_body(200_000, 8192, 1),
            None,
            &[Flag::Pending],
        )
        .await;
    assert!(
        matches!(
            err,
            Err(BlobError::QuotaExceeded {
                limit_bytes: LIMIT,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(used(&store, &u).await, 10_000 + BLOB);
    assert_eq!(
        files_under(dir.path()),
        before,
        "no content, flags or temp file left"
    );
    assert!(matches!(
        store.get(&u, &d, &id("huge"), None).await,
        Err(BlobError::NotFound)
    ));
    // The id is free again and the reservation was given back.
    put_bytes(&store, &u, &d, &id("huge"), &[1; 90_000], &[])
        .await
        .unwrap();
    assert_eq!(used(&store, &u).await, 100_000 + 2 * BLOB);
}

#[tokio::test]
async fn a_body_that_errors_half_way_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), NO_LIMIT, 1);
    let (u, d) = (user("alice"), Namespace::default());
    let items: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from(vec![1u8; 50_000])),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
        Ok(Bytes::from(vec![2u8; 50_000])),
    ];
    let err = store
        .put(
            &u,
            &d,
            &id("cut"),
            Box::pin(stream::iter(items)),
            None,
            &[Flag::Pending],
        )
        .await;
    assert!(matches!(err, Err(BlobError::BodyInterrupted)), "{err:?}");
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(used(&store, &u).await, 0);
    assert!(matches!(
        store.get(&u, &d, &id("cut"), None).await,
        Err(BlobError::NotFound)
    ));

    // A body shorter than its announced length is cut too.
    let err = store
        .put(&u, &d, &id("short"), body(&[1; 10], 4), Some(20), &[])
        .await;
    assert!(matches!(err, Err(BlobError::BodyInterrupted)), "{err:?}");
    // And one longer than announced.
    let err = store
        .put(&u, &d, &id("long"), body(&[1; 30], 4), Some(20), &[])
        .await;
    assert!(matches!(err, Err(BlobError::BodyInterrupted)), "{err:?}");
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(used(&store, &u).await, 0);
}

#[tokio::test]
async fn a_put_dropped_half_way_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1_000_000 + BLOB, 1);
    let (u, d, b) = (user("alice"), Namespace::default(), id("dropped"));
    let (tx, slow_body) = channel_body();
    {
        let mut put = store.put(&u, &d, &b, slow_body, Some(100_000), &[Flag::Pending]);
        tx.send(Ok(Bytes::from(vec![7u8; 40_000]))).await.unwrap();
        // Drive the upload until it has consumed the first chunks and waits
        // for more: the channel holds 4 items, so once these sends and one
        // more reservation succeed, the upload is inside its body loop.
        let filler = async {
            for _ in 0..4 {
                tx.send(Ok(Bytes::from(vec![7u8; 1000]))).await.unwrap();
            }
            drop(tx.reserve().await.unwrap());
        };
        tokio::select! {
            result = &mut put => panic!("upload finished early: {result:?}"),
            () = filler => {}
        }
        // While in flight: the announced length is reserved but not used.
        assert_eq!(used(&store, &u).await, 0);
        drop(put);
    }
    drop(tx);
    assert!(files_under(dir.path()).is_empty(), "temp file removed");
    assert_eq!(used(&store, &u).await, 0);
    assert!(matches!(
        store.get(&u, &d, &b, None).await,
        Err(BlobError::NotFound)
    ));
    // Claim, permit and reservation were released: the same id can be stored,
    // up to the whole quota.
    put_bytes(&store, &u, &d, &b, &[1; 1_000_000], &[])
        .await
        .unwrap();
    assert_eq!(used(&store, &u).await, 1_000_000 + BLOB);
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

/// An upload body that records how many bodies are being read at once: it
/// yields one chunk, then waits for `go` and ends.
fn tracked_body(
    index: usize,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
    started: mpsc::UnboundedSender<usize>,
    go: oneshot::Receiver<()>,
) -> ByteStream {
    Box::pin(stream::unfold(Some(go), move |go| {
        let (active, max_active, started) = (
            Arc::clone(&active),
            Arc::clone(&max_active),
            started.clone(),
        );
        async move {
            match go {
                Some(go) => {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    max_active.fetch_max(now, Ordering::SeqCst);
                    started.send(index).unwrap();
                    // Wait for the test's go before the first chunk, so the
                    // upload holds its write permit meanwhile.
                    go.await.unwrap();
                    active.fetch_sub(1, Ordering::SeqCst);
                    Some((Ok(Bytes::from(vec![index as u8; 100])), None))
                }
                None => None,
            }
        }
    }))
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
