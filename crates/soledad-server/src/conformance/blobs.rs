//! The [`BlobBackend`] contract: immutable blobs per user and namespace,
//! visible only once complete; ranges; flags; listings by id or upload order
//! with flag filters and tombstones; counts; per-user quota charged for
//! stored bytes only, refused up front or mid-stream; nothing left behind by
//! a failed, cut or dropped upload.
//!
//! Not part of the contract, so not checked here: where and how bytes are
//! kept (the filesystem layout), write permits (`concurrent_blob_writes`),
//! what survives a restart.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, stream};
use tokio::sync::mpsc;

use crate::blobs::ENTRY_OVERHEAD_BYTES;

use crate::blobs::{
    BlobBackend, BlobError, BlobId, BlobRead, ByteStream, Flag, ListQuery, Namespace, Order,
    RangeSpec, Usage, UserId,
};

/// One stored entry of the quota model ([`ENTRY_OVERHEAD_BYTES`]): a tombstone.
const E: u64 = ENTRY_OVERHEAD_BYTES;
/// What a live blob costs beyond its bytes: two entries (its content and its flags),
/// whatever the backend's layout (issue 8: every stored entry costs quota).
const BLOB: u64 = 2 * ENTRY_OVERHEAD_BYTES;

/// No quota.
pub const NO_LIMIT: u64 = u64::MAX;

/// Makes the backends the cases run on.
pub trait Factory: Sync {
    /// A new, empty backend whose users each have `quota_bytes`.
    fn fresh(&self, quota_bytes: u64) -> BoxFuture<'_, Arc<dyn BlobBackend>>;
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

fn len_of(data: &[u8]) -> u64 {
    u64::try_from(data.len()).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so contents differ per offset.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
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

/// A body fed through a channel (4 chunks of buffer), and its sender.
fn channel_body() -> (mpsc::Sender<io::Result<Bytes>>, ByteStream) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Box::pin(body))
}

/// Fills the channel of [`channel_body`] until the upload has taken chunks
/// out of it: once this returns, the upload is reading its body.
async fn until_reading(tx: &mpsc::Sender<io::Result<Bytes>>) {
    for _ in 0..4 {
        tx.send(Ok(Bytes::from(vec![7u8; 1000]))).await.unwrap();
    }
    drop(tx.reserve().await.unwrap());
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
    store: &dyn BlobBackend,
    u: &UserId,
    n: &Namespace,
    b: &BlobId,
    data: &[u8],
    flags: &[Flag],
) -> Result<u64, BlobError> {
    store
        .put(u, n, b, body(data, 1000), Some(len_of(data)), flags)
        .await
}

async fn get_bytes(store: &dyn BlobBackend, u: &UserId, n: &Namespace, b: &BlobId) -> Vec<u8> {
    read_all(store.get(u, n, b, None).await.unwrap()).await
}

async fn used(store: &dyn BlobBackend, u: &UserId) -> u64 {
    store.usage(u).await.unwrap().used_bytes
}

fn not_found<T: std::fmt::Debug>(result: Result<T, BlobError>) {
    assert!(matches!(result, Err(BlobError::NotFound)), "{result:?}");
}

fn deleted() -> ListQuery {
    ListQuery {
        deleted: true,
        ..ListQuery::default()
    }
}

/// Empty, small and multi-megabyte blobs (streamed without a length) read
/// back whole; `put` returns the bytes stored, usage counts them.
pub async fn round_trips_empty_small_and_multi_megabyte_blobs(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d) = (user("alice"), Namespace::default());

    let small = b"hello blobs".to_vec();
    let stored = put_bytes(store, &u, &d, &id("small"), &small, &[]).await;
    assert_eq!(stored.unwrap(), 11);
    let read = store.get(&u, &d, &id("small"), None).await.unwrap();
    assert_eq!((read.total_size, read.start, read.len), (11, 0, 11));
    assert_eq!(read_all(read).await, small);

    let empty = id("empty");
    let stored = store.put(&u, &d, &empty, body(&[], 1), Some(0), &[]).await;
    assert_eq!(stored.unwrap(), 0);
    assert!(get_bytes(store, &u, &d, &id("empty")).await.is_empty());

    let (total, chunk) = (5 * 1024 * 1024, 64 * 1024);
    let big = generated_body(total, chunk, 7);
    let stored = store.put(&u, &d, &id("big"), big, None, &[]).await.unwrap();
    assert_eq!(stored, len_of(&vec![0; total]));
    let expected: Vec<u8> = (0..total / chunk)
        .flat_map(|i| pattern(chunk, 7 + u64::try_from(i).unwrap()))
        .collect();
    let read = store.get(&u, &d, &id("big"), None).await.unwrap();
    assert_eq!(read.len, stored);
    let got = read_all(read).await;
    assert!(got == expected, "multi-MB content differs");
    assert_eq!(used(store, &u).await, 11 + stored + 3 * BLOB);
}

/// Blobs are immutable: a second `put` of an id fails and changes nothing.
pub async fn duplicate_put_is_already_exists_and_keeps_the_original(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d, b) = (user("alice"), Namespace::default(), id("dup"));
    put_bytes(store, &u, &d, &b, b"first", &[Flag::Processed])
        .await
        .unwrap();
    let err = put_bytes(store, &u, &d, &b, b"second!", &[Flag::Failed]).await;
    assert!(matches!(err, Err(BlobError::AlreadyExists)), "{err:?}");
    assert_eq!(get_bytes(store, &u, &d, &b).await, b"first");
    assert_eq!(
        store.get_flags(&u, &d, &b).await.unwrap(),
        vec![Flag::Processed]
    );
    assert_eq!(used(store, &u).await, 5 + BLOB);
}

/// While an upload of an id is in flight, another upload of it fails.
pub async fn a_put_while_another_of_the_same_id_is_in_flight_fails(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d, b) = (user("alice"), Namespace::default(), id("race"));
    let (tx, slow_body) = channel_body();
    let first = store.put(&u, &d, &b, slow_body, None, &[]);
    tx.send(Ok(Bytes::from_static(b"winner"))).await.unwrap();
    let second = async {
        // The first upload is in flight (its body is still open).
        let result = put_bytes(store, &u, &d, &b, b"loser", &[]).await;
        drop(tx);
        result
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap(), 6);
    assert!(
        matches!(second, Err(BlobError::AlreadyExists)),
        "{second:?}"
    );
    assert_eq!(get_bytes(store, &u, &d, &b).await, b"winner");
}

/// Of concurrent uploads of one id, exactly one wins; its content is stored
/// whole and counted once.
pub async fn concurrent_duplicate_puts_exactly_one_wins(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let data = vec![i; 10_000 + usize::from(i)];
            let (u, d, b) = (user("alice"), Namespace::default(), id("same"));
            (i, put_bytes(store.as_ref(), &u, &d, &b, &data, &[]).await)
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
    assert_eq!(winners.len(), 1, "exactly one upload wins: {winners:?}");
    let w = winners.first().copied().unwrap();
    let (u, d) = (user("alice"), Namespace::default());
    let got = get_bytes(store.as_ref(), &u, &d, &id("same")).await;
    assert_eq!(got, vec![w; 10_000 + usize::from(w)]);
    assert_eq!(used(store.as_ref(), &u).await, len_of(&got) + BLOB);
}

/// An upload in flight is invisible (get, flags, list, count, usage) until
/// it completes; then all of it is visible at once, with its flags.
pub async fn an_upload_is_invisible_until_complete(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, mx, b) = (user("alice"), Namespace::incoming(), id("mail"));
    let listing = ListQuery {
        namespace: Namespace::incoming(),
        ..ListQuery::default()
    };
    let (tx, slow_body) = channel_body();
    let mut put = store.put(&u, &mx, &b, slow_body, None, &[Flag::Pending]);
    tokio::select! {
        result = &mut put => panic!("upload finished early: {result:?}"),
        () = until_reading(&tx) => {}
    }
    not_found(store.get(&u, &mx, &b, None).await);
    not_found(store.get_flags(&u, &mx, &b).await);
    assert!(store.list(&u, &listing).await.unwrap().is_empty());
    assert_eq!(store.count(&u, &listing).await.unwrap(), 0);
    assert_eq!(used(store, &u).await, 0, "writes in flight are not usage");
    tx.send(Ok(Bytes::from_static(b"end"))).await.unwrap();
    drop(tx);
    assert_eq!(put.await.unwrap(), 4003);
    let got = get_bytes(store, &u, &mx, &b).await;
    assert_eq!(got.len(), 4003);
    assert!(got.ends_with(b"end"));
    assert_eq!(
        store.get_flags(&u, &mx, &b).await.unwrap(),
        vec![Flag::Pending]
    );
    assert_eq!(store.list(&u, &listing).await.unwrap(), vec!["mail"]);
    assert_eq!(used(store, &u).await, 4003 + BLOB);
}

/// Ranges resolve as in RFC 9110 ([`RangeSpec::resolve`]); a range outside
/// the blob is `RangeNotSatisfiable` with the blob's size.
pub async fn ranges_from_to_suffix_and_unsatisfiable(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d, b) = (user("alice"), Namespace::default(), id("ranged"));
    let data = pattern(200_000, 3);
    put_bytes(store, &u, &d, &b, &data, &[]).await.unwrap();
    let from = |start, end_inclusive| RangeSpec::From {
        start,
        end_inclusive,
    };
    let cases = [
        (from(10, Some(19)), 10usize, 10usize),
        (from(150_000, None), 150_000, 50_000),
        (from(199_999, Some(500_000)), 199_999, 1),
        (RangeSpec::Suffix { len: 100 }, 199_900, 100),
        (RangeSpec::Suffix { len: 1_000_000 }, 0, 200_000),
    ];
    for (range, start, len) in cases {
        let read = store.get(&u, &d, &b, Some(range)).await.unwrap();
        let (start_u64, len_u64) = (len_of(&data[..start]), len_of(&data[..len]));
        assert_eq!(
            (read.total_size, read.start, read.len),
            (200_000, start_u64, len_u64),
            "{range:?}"
        );
        let expected = data.get(start..start + len).unwrap();
        assert_eq!(read_all(read).await, expected, "{range:?}");
    }
    for bad in [
        from(200_000, None),
        from(20, Some(10)),
        RangeSpec::Suffix { len: 0 },
    ] {
        let err = store.get(&u, &d, &b, Some(bad)).await;
        assert!(
            matches!(err, Err(BlobError::RangeNotSatisfiable { size: 200_000 })),
            "{bad:?}: {err:?}"
        );
    }
    let empty = id("empty");
    put_bytes(store, &u, &d, &empty, &[], &[]).await.unwrap();
    let err = store
        .get(&u, &d, &empty, Some(RangeSpec::Suffix { len: 1 }))
        .await;
    assert!(
        matches!(err, Err(BlobError::RangeNotSatisfiable { size: 0 })),
        "{err:?}"
    );
}

/// Every call on an id never stored is `NotFound`; listings are empty.
pub async fn missing_blobs_are_not_found(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d, b) = (user("alice"), Namespace::default(), id("nothing"));
    not_found(store.get(&u, &d, &b, None).await);
    not_found(store.delete(&u, &d, &b).await);
    not_found(store.get_flags(&u, &d, &b).await);
    not_found(store.set_flags(&u, &d, &b, vec![Flag::Pending]).await);
    assert!(
        store
            .list(&u, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list(&u, &deleted()).await.unwrap().is_empty());
    assert_eq!(store.count(&u, &ListQuery::default()).await.unwrap(), 0);
    assert_eq!(
        store.usage(&u).await.unwrap(),
        Usage {
            used_bytes: 0,
            limit_bytes: NO_LIMIT
        }
    );
}

/// Initial flags are stored with the blob; `set_flags` replaces the set
/// (duplicates dropped, order kept); flags are per namespace.
pub async fn flags_initial_get_and_set(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, mx) = (user("alice"), Namespace::incoming());
    put_bytes(store, &u, &mx, &id("m1"), b"mail", &[Flag::Pending])
        .await
        .unwrap();
    put_bytes(store, &u, &mx, &id("m2"), b"mail", &[])
        .await
        .unwrap();
    let (m1, m2) = (id("m1"), id("m2"));
    let flags = |b| store.get_flags(&u, &mx, b);
    assert_eq!(flags(&m1).await.unwrap(), vec![Flag::Pending]);
    assert!(flags(&m2).await.unwrap().is_empty());
    let set = vec![Flag::Processing, Flag::Failed, Flag::Processing];
    store.set_flags(&u, &mx, &id("m1"), set).await.unwrap();
    assert_eq!(
        flags(&m1).await.unwrap(),
        vec![Flag::Processing, Flag::Failed],
        "replaced, duplicates dropped"
    );
    store.set_flags(&u, &mx, &id("m1"), vec![]).await.unwrap();
    assert!(flags(&m1).await.unwrap().is_empty());
    assert_eq!(get_bytes(store, &u, &mx, &id("m1")).await, b"mail");
    not_found(store.get_flags(&u, &Namespace::default(), &id("m1")).await);
}

/// `delete` removes content and flags, frees the quota, leaves a tombstone
/// (listed with `deleted`, without flags); storing the id again revives it.
pub async fn delete_frees_quota_leaves_a_tombstone_and_allows_a_new_put(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d) = (user("alice"), Namespace::default());
    put_bytes(store, &u, &d, &id("keep"), b"12345", &[])
        .await
        .unwrap();
    put_bytes(store, &u, &d, &id("gone"), b"1234567", &[Flag::Pending])
        .await
        .unwrap();
    assert_eq!(used(store, &u).await, 12 + 2 * BLOB);

    store.delete(&u, &d, &id("gone")).await.unwrap();
    assert_eq!(
        used(store, &u).await,
        5 + BLOB + E,
        "a tombstone is one entry"
    );
    not_found(store.get(&u, &d, &id("gone"), None).await);
    not_found(store.get_flags(&u, &d, &id("gone")).await);
    not_found(store.delete(&u, &d, &id("gone")).await);

    let live = ListQuery::default();
    assert_eq!(store.list(&u, &live).await.unwrap(), vec!["keep"]);
    assert_eq!(store.list(&u, &deleted()).await.unwrap(), vec!["gone"]);
    assert_eq!(store.count(&u, &deleted()).await.unwrap(), 1);
    let pending_deleted = ListQuery {
        filter_flag: Some(Flag::Pending),
        ..deleted()
    };
    assert!(
        store.list(&u, &pending_deleted).await.unwrap().is_empty(),
        "flags go with the content"
    );

    put_bytes(store, &u, &d, &id("gone"), b"new", &[])
        .await
        .unwrap();
    assert_eq!(get_bytes(store, &u, &d, &id("gone")).await, b"new");
    assert_eq!(store.list(&u, &live).await.unwrap(), vec!["gone", "keep"]);
    assert!(store.list(&u, &deleted()).await.unwrap().is_empty());
    assert_eq!(used(store, &u).await, 8 + 2 * BLOB);
}

/// Listings: by id, or by upload order (deleted blobs: deletion order) in
/// both directions; filtered by flag (flag changes show at once); `count`
/// agrees with `list`.
pub async fn list_filters_orders_and_counts(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, mx) = (user("alice"), Namespace::incoming());
    // Uploaded in this order; ids deliberately not in upload order.
    let uploads = [
        ("c", Flag::Pending),
        ("a", Flag::Processed),
        ("d", Flag::Pending),
        ("b", Flag::Pending),
    ];
    for (name, flag) in uploads {
        put_bytes(store, &u, &mx, &id(name), name.as_bytes(), &[flag])
            .await
            .unwrap();
    }
    let q = |filter_flag, order, deleted| ListQuery {
        namespace: Namespace::incoming(),
        filter_flag,
        order,
        deleted,
    };
    let u = &u;
    let list = |query: ListQuery| async move { store.list(u, &query).await.unwrap() };
    let count = |query: ListQuery| async move { store.count(u, &query).await.unwrap() };
    let (asc, desc) = (Some(Order::DateAscending), Some(Order::DateDescending));
    let pending = Some(Flag::Pending);
    assert_eq!(list(q(None, None, false)).await, ["a", "b", "c", "d"]);
    assert_eq!(list(q(None, asc, false)).await, ["c", "a", "d", "b"]);
    assert_eq!(list(q(None, desc, false)).await, ["b", "d", "a", "c"]);
    assert_eq!(list(q(pending, asc, false)).await, ["c", "d", "b"]);
    assert_eq!(count(q(pending, None, false)).await, 3);
    assert_eq!(count(q(Some(Flag::Processed), None, false)).await, 1);
    assert_eq!(count(q(Some(Flag::Failed), None, false)).await, 0);
    assert_eq!(count(q(None, None, false)).await, 4);

    store
        .set_flags(u, &mx, &id("c"), vec![Flag::Processing])
        .await
        .unwrap();
    assert_eq!(list(q(pending, None, false)).await, ["b", "d"]);
    assert_eq!(list(q(Some(Flag::Processing), None, false)).await, ["c"]);

    // Deleted in this order: by deletion date, not upload date.
    for name in ["d", "a", "b"] {
        store.delete(u, &mx, &id(name)).await.unwrap();
    }
    assert_eq!(list(q(None, None, true)).await, ["a", "b", "d"]);
    assert_eq!(list(q(None, asc, true)).await, ["d", "a", "b"]);
    assert_eq!(list(q(None, desc, true)).await, ["b", "a", "d"]);
    assert_eq!(count(q(None, None, true)).await, 3);
    assert_eq!(list(q(None, None, false)).await, ["c"]);
}

/// The same id in two namespaces is two blobs: content, flags, deletion and
/// listings are per namespace; quota is per user across namespaces.
pub async fn namespaces_are_isolated(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let u = user("alice");
    let (n1, n2) = (ns("photos"), ns("mail"));
    put_bytes(store, &u, &n1, &id("x"), b"in photos", &[])
        .await
        .unwrap();
    put_bytes(store, &u, &n2, &id("x"), b"in mail", &[Flag::Pending])
        .await
        .unwrap();
    assert_eq!(get_bytes(store, &u, &n1, &id("x")).await, b"in photos");
    assert_eq!(get_bytes(store, &u, &n2, &id("x")).await, b"in mail");
    assert!(store.get_flags(&u, &n1, &id("x")).await.unwrap().is_empty());
    store.delete(&u, &n1, &id("x")).await.unwrap();
    assert_eq!(get_bytes(store, &u, &n2, &id("x")).await, b"in mail");
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
    assert_eq!(used(store, &u).await, 7 + BLOB + E);
}

/// Another user's blob is absent; each user has their own ids and quota.
pub async fn users_are_isolated(factory: &dyn Factory) {
    let store = factory.fresh(100 + BLOB).await;
    let store = store.as_ref();
    let (alice, bob, d) = (user("alice"), user("bob"), Namespace::default());
    put_bytes(store, &alice, &d, &id("secret"), &[1; 60], &[])
        .await
        .unwrap();
    not_found(store.get(&bob, &d, &id("secret"), None).await);
    not_found(store.delete(&bob, &d, &id("secret")).await);
    not_found(store.get_flags(&bob, &d, &id("secret")).await);
    assert!(
        store
            .list(&bob, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    put_bytes(store, &bob, &d, &id("secret"), &[2; 60], &[])
        .await
        .unwrap();
    let expected = Usage {
        used_bytes: 60 + BLOB,
        limit_bytes: 100 + BLOB,
    };
    assert_eq!(store.usage(&alice).await.unwrap(), expected);
    assert_eq!(store.usage(&bob).await.unwrap(), expected);
    assert_eq!(
        get_bytes(store, &alice, &d, &id("secret")).await,
        vec![1; 60]
    );
}

/// A known length past the quota is refused before the body is read,
/// reporting the usage and limit; exactly up to the limit is accepted.
pub async fn quota_exceeded_up_front_never_reads_the_body(factory: &dyn Factory) {
    let store = factory.fresh(1000 + 2 * BLOB).await;
    let store = store.as_ref();
    let (u, d) = (user("alice"), Namespace::default());
    put_bytes(store, &u, &d, &id("a"), &[0; 600], &[])
        .await
        .unwrap();
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
    assert!(!polled.load(Ordering::SeqCst), "body read although refused");
    assert_eq!(used(store, &u).await, 600 + BLOB);
    not_found(store.get(&u, &d, &id("b"), None).await);
    put_bytes(store, &u, &d, &id("c"), &[0; 400], &[])
        .await
        .unwrap();
    let full = Usage {
        used_bytes: 1000 + 2 * BLOB,
        limit_bytes: 1000 + 2 * BLOB,
    };
    assert_eq!(store.usage(&u).await.unwrap(), full);
    let one_more = put_bytes(store, &u, &d, &id("e"), &[0; 1], &[]).await;
    assert!(
        matches!(one_more, Err(BlobError::QuotaExceeded { .. })),
        "{one_more:?}"
    );
}

/// A body without a length that grows past the quota fails and stores
/// nothing; the id and the reservation are free again afterwards.
pub async fn quota_exceeded_mid_stream_stores_nothing(factory: &dyn Factory) {
    const LIMIT: u64 = 100_000 + 2 * BLOB;
    let store = factory.fresh(LIMIT).await;
    let store = store.as_ref();
    let (u, d) = (user("alice"), Namespace::default());
    put_bytes(store, &u, &d, &id("a"), &[0; 10_000], &[])
        .await
        .unwrap();
    let huge = generated_body(200_000, 8192, 1);
    let err = store
        .put(&u, &d, &id("huge"), huge, None, &[Flag::Pending])
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
    assert_eq!(used(store, &u).await, 10_000 + BLOB);
    not_found(store.get(&u, &d, &id("huge"), None).await);
    assert_eq!(store.list(&u, &ListQuery::default()).await.unwrap(), ["a"]);
    put_bytes(store, &u, &d, &id("huge"), &[1; 90_000], &[])
        .await
        .unwrap();
    assert_eq!(used(store, &u).await, 100_000 + 2 * BLOB);
}

/// A body that yields an error, or is shorter or longer than announced, is
/// `BodyInterrupted` and stores nothing.
pub async fn a_failed_body_stores_nothing(factory: &dyn Factory) {
    let store = factory.fresh(NO_LIMIT).await;
    let store = store.as_ref();
    let (u, d) = (user("alice"), Namespace::default());
    let items: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from(vec![1u8; 50_000])),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
        Ok(Bytes::from(vec![2u8; 50_000])),
    ];
    let cut: ByteStream = Box::pin(stream::iter(items));
    let err = store
        .put(&u, &d, &id("cut"), cut, None, &[Flag::Pending])
        .await;
    assert!(matches!(err, Err(BlobError::BodyInterrupted)), "{err:?}");
    let short = id("short");
    let err = store
        .put(&u, &d, &short, body(&[1; 10], 4), Some(20), &[])
        .await;
    assert!(matches!(err, Err(BlobError::BodyInterrupted)), "{err:?}");
    let long = id("long");
    let err = store
        .put(&u, &d, &long, body(&[1; 30], 4), Some(20), &[])
        .await;
    assert!(matches!(err, Err(BlobError::BodyInterrupted)), "{err:?}");
    for name in ["cut", "short", "long"] {
        not_found(store.get(&u, &d, &id(name), None).await);
    }
    assert!(
        store
            .list(&u, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list(&u, &deleted()).await.unwrap().is_empty());
    assert_eq!(used(store, &u).await, 0);
    // The ids are free.
    put_bytes(store, &u, &d, &id("cut"), b"ok", &[])
        .await
        .unwrap();
}

/// Dropping a `put` future half way stores nothing and releases everything
/// it held: the id, and the quota it reserved.
pub async fn a_put_dropped_half_way_leaves_nothing(factory: &dyn Factory) {
    let store = factory.fresh(1_000_000 + BLOB).await;
    let store = store.as_ref();
    let (u, d, b) = (user("alice"), Namespace::default(), id("dropped"));
    let (tx, slow_body) = channel_body();
    {
        let mut put = store.put(&u, &d, &b, slow_body, Some(100_000), &[Flag::Pending]);
        tx.send(Ok(Bytes::from(vec![7u8; 40_000]))).await.unwrap();
        tokio::select! {
            result = &mut put => panic!("upload finished early: {result:?}"),
            () = until_reading(&tx) => {}
        }
        assert_eq!(used(store, &u).await, 0);
        drop(put);
    }
    drop(tx);
    not_found(store.get(&u, &d, &b, None).await);
    assert!(
        store
            .list(&u, &ListQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(used(store, &u).await, 0);
    put_bytes(store, &u, &d, &b, &[1; 1_000_000], &[])
        .await
        .unwrap();
    assert_eq!(used(store, &u).await, 1_000_000 + BLOB);
}
