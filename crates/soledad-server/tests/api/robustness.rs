//! Hostile and unlucky cases: path traversal, quota, cut uploads, restarts.

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use soledad_server::blobs::ENTRY_OVERHEAD_BYTES;

use crate::blobs::Blobs;
use crate::util::{TestServer, cut_upload, eventually, raw_tls, response_of, tls_stream};

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn path_traversal_attempts_are_refused() {
    let t = TestServer::start().await;
    let outside_before = files_under(t.dir.path());
    let targets = [
        "PUT /blobs/alice/.. ",
        "PUT /blobs/alice/%2e%2e ",
        "PUT /blobs/alice/%2E%2E%2F%2E%2E%2Fbob%2Fx ",
        "PUT /blobs/alice/..%2F..%2Fbob ",
        "PUT /blobs/alice/%2Fetc%2Fpasswd ",
        "PUT /blobs/alice/a%00b ",
        "PUT /blobs/alice/a%ffb ",
        "PUT /blobs/alice/a%5Cb ",
        "PUT /blobs/alice/x?namespace=..%2F.. ",
        "PUT /blobs/alice/x?namespace=%2Ftmp ",
        "PUT /blobs/alice/x?namespace=. ",
        "PUT /blobs/alice/../bob/x ",
        "PUT /blobs/alice/./x ",
        "PUT /blobs/../blobs/bob/x ",
        "PUT /blobs/%2e%2e/bob/x ",
        "PUT /blobs/..%2Fbob/x ",
        "PUT /blobs/alice%2F..%2Fbob/x ",
        "PUT //blobs/alice/x ",
        "PUT https://127.0.0.1/blobs/bob/x ",
        "PUT /shared/doc/..%2F..%2Fshared ",
        "PUT /user-alice/../user-bob/sync-from/x ",
    ];
    for target in targets {
        let request = format!(
            "{target}HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\nevil",
            t.alice.header
        );
        let (addr, cert) = (t.users_addr(), t.cert_path().to_path_buf());
        let (status, response) =
            tokio::task::spawn_blocking(move || raw_tls(addr, &cert, request.as_bytes()))
                .await
                .unwrap();
        assert!(
            [400, 403, 404].contains(&status),
            "{target} -> {status}: {response}"
        );
    }
    // Odd raw bytes in the request line: refused by the parser or the id rules.
    for raw in [
        &b"PUT /blobs/alice/a\x00b HTTP/1.1\r\n"[..],
        b"PUT /blobs/alice/\xff\xfe HTTP/1.1\r\n",
    ] {
        let mut request = raw.to_vec();
        request.extend_from_slice(
            format!(
                "Host: x\r\nAuthorization: {}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
                t.alice.header
            )
            .as_bytes(),
        );
        let (addr, cert) = (t.users_addr(), t.cert_path().to_path_buf());
        let (status, _) = tokio::task::spawn_blocking(move || raw_tls(addr, &cert, &request))
            .await
            .unwrap();
        assert!(status == 0 || status == 400 || status == 404, "{status}");
    }
    // Nothing was stored for anyone, and no file appeared outside the data dir.
    for who in [&t.alice, &t.bob] {
        let b = Blobs { t: &t, who };
        assert_eq!(b.usage().await.0, 0);
        assert!(b.ids("").await.is_empty());
    }
    let outside_after: Vec<String> = files_under(t.dir.path())
        .into_iter()
        .filter(|f| !f.starts_with("data/"))
        .collect();
    let outside_before: Vec<String> = outside_before
        .into_iter()
        .filter(|f| !f.starts_with("data/"))
        .collect();
    assert_eq!(outside_after, outside_before);
    t.shutdown().await;
}

#[tokio::test]
async fn quota_exceeded_stores_nothing() {
    let t = TestServer::start_with(|c| c.quota_bytes = 100_000).await;
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(b.put("first", "", vec![1u8; 60_000]).await, StatusCode::OK);

    // Announced length over the quota: refused up front.
    let response = t
        .client
        .put(b.url("/second"))
        .header("authorization", &t.alice.header)
        .body(vec![2u8; 60_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "quota_exceeded");

    // No length announced: the quota trips mid-upload.
    let chunks = futures_util::stream::iter(
        (0..15).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![3u8; 4096]))),
    );
    let result = t
        .client
        .put(b.url("/third"))
        .header("authorization", &t.alice.header)
        .body(reqwest::Body::wrap_stream(chunks.boxed()))
        .send()
        .await;
    if let Ok(response) = result {
        // The server may also cut the connection after answering.
        assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    }

    // A blob costs its bytes plus two entries (content and flags files).
    let first = 60_000 + 2 * ENTRY_OVERHEAD_BYTES;
    assert_eq!(b.usage().await, (first, 100_000));
    assert_eq!(b.ids("").await, ["first"]);
    assert_eq!(
        b.get("second", "", None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("third", "", None).await.status(),
        StatusCode::NOT_FOUND
    );
    // Still room for a blob that fits.
    let room = 100_000 - first - 2 * ENTRY_OVERHEAD_BYTES;
    let fits = vec![4u8; usize::try_from(room).unwrap()];
    assert_eq!(b.put("fits", "", fits).await, StatusCode::OK);
    assert_eq!(b.usage().await.0, 100_000);
    t.shutdown().await;
}

#[tokio::test]
async fn killed_upload_leaves_no_blob_and_no_usage() {
    let t = TestServer::start().await;
    let head = format!(
        "PUT /blobs/alice/cut HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Length: 1000000\r\n\r\n",
        t.alice.header
    );
    let (addr, cert) = (t.users_addr(), t.cert_path().to_path_buf());
    tokio::task::spawn_blocking(move || cut_upload(addr, &cert, &head, 300_000))
        .await
        .unwrap();
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    // Once the server has noticed, the id is free again: a full upload succeeds.
    eventually("the cut upload to be dropped", || async {
        b.put("cut", "", vec![9u8; 1000]).await == StatusCode::OK
    })
    .await;
    assert_eq!(
        b.get("cut", "", None).await.bytes().await.unwrap().as_ref(),
        &[9u8; 1000][..]
    );
    assert_eq!(b.usage().await.0, 1000 + 2 * ENTRY_OVERHEAD_BYTES);
    assert_eq!(b.ids("").await, ["cut"]);

    // Same with a chunked body cut in the middle of a chunk.
    let head = format!(
        "PUT /blobs/alice/cut2 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n100000\r\n",
        t.alice.header
    );
    let (addr, cert) = (t.users_addr(), t.cert_path().to_path_buf());
    tokio::task::spawn_blocking(move || cut_upload(addr, &cert, &head, 50_000))
        .await
        .unwrap();
    eventually("the cut chunked upload to be dropped", || async {
        b.put("cut2", "", vec![8u8; 10]).await == StatusCode::OK
    })
    .await;
    assert_eq!(b.usage().await.0, 1010 + 4 * ENTRY_OVERHEAD_BYTES);
    t.shutdown().await;
}

#[tokio::test]
async fn restart_keeps_completed_blobs_flags_and_tombstones() {
    let mut t = TestServer::start().await;
    {
        let b = Blobs {
            t: &t,
            who: &t.alice,
        };
        assert_eq!(
            b.put("keep", "", b"kept bytes".to_vec()).await,
            StatusCode::OK
        );
        assert_eq!(
            b.put("mx1", "?namespace=MX", b"mail".to_vec()).await,
            StatusCode::OK
        );
        assert_eq!(
            b.flags("mx1", "?namespace=MX", r#"["PROCESSED"]"#).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(b.put("gone", "", b"bye".to_vec()).await, StatusCode::OK);
        assert_eq!(b.delete("gone", "").await, StatusCode::NO_CONTENT);
    }
    let shared = t
        .client
        .put(t.url("/shared/doc/backup"))
        .header("authorization", &t.alice.header)
        .body("wrapped secrets")
        .send()
        .await
        .unwrap();
    assert_eq!(shared.status(), StatusCode::CREATED);

    t.restart().await;

    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert_eq!(
        b.get("keep", "", None).await.text().await.unwrap(),
        "kept bytes"
    );
    assert_eq!(b.ids("?namespace=MX&filter_flag=PROCESSED").await, ["mx1"]);
    let flags: Vec<String> = b
        .get("mx1", "?namespace=MX&only_flags=true", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flags, ["PROCESSED"]);
    assert_eq!(b.ids("?deleted=true").await, ["gone"]);
    // Two blobs (content and flags files each), a tombstone, and the shared
    // document (backups count against their owner's quota, one entry each),
    // measured again after the restart.
    assert_eq!(
        b.usage().await.0,
        10 + 4 + 5 * ENTRY_OVERHEAD_BYTES + "wrapped secrets".len() as u64 + ENTRY_OVERHEAD_BYTES
    );
    assert_eq!(
        b.put("keep", "", b"again".to_vec()).await,
        StatusCode::CONFLICT
    );
    let response = t
        .client
        .get(t.url("/shared/doc/backup"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "wrapped secrets");
    t.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_upload_in_flight() {
    use std::io::Write as _;

    let mut t = TestServer::start().await;
    let (addr, cert) = (t.users_addr(), t.cert_path().to_path_buf());
    let head = format!(
        "PUT /blobs/alice/inflight HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Length: 200000\r\nConnection: close\r\n\r\n",
        t.alice.header
    );
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut tls = tls_stream(addr, &cert);
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(&[6u8; 100_000]).unwrap();
        tls.flush().unwrap();
        wait.recv().unwrap();
        tls.write_all(&[6u8; 100_000]).unwrap();
        tls.flush().unwrap();
        response_of(&mut tls)
    });
    // The backend is streaming the body once its temp file exists.
    let tmp = t.config.blobs_dir().join(".tmp");
    eventually("the upload to reach the blob store", || {
        let tmp = tmp.clone();
        async move { std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some()) }
    })
    .await;
    let stopping = tokio::spawn(t.server.take().unwrap().shutdown());
    eventually("the listener to close", || async {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    go.send(()).unwrap();
    let (status, response) = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{response}");
    stopping.await.unwrap().unwrap();

    t.start_again().await;
    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    let stored = b.get("inflight", "", None).await.bytes().await.unwrap();
    assert_eq!(stored.as_ref(), &[6u8; 200_000][..]);
    t.shutdown().await;
}
