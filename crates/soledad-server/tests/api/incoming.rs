//! The incoming box: delivery on the services API only.

use reqwest::StatusCode;
use soledad_crypto::{Preamble, Scheme};
use soledad_server::blobs::ENTRY_OVERHEAD_BYTES;

use crate::blobs::Blobs;
use crate::util::{TestServer, auth_header, raw_tcp, service_header};

async fn deliver(
    t: &TestServer,
    uuid: &str,
    id: &str,
    auth: Option<&str>,
    body: &'static [u8],
) -> StatusCode {
    let mut request = t
        .plain
        .put(t.services_url(&format!("/incoming/{uuid}/{id}")))
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn delivery_lands_in_mx_pending_with_external_preamble() {
    let t = TestServer::start().await;
    assert!(t.running().services_addr().ip().is_loopback());
    let payload: &'static [u8] = b"-----BEGIN PGP MESSAGE----- opaque";
    assert_eq!(
        deliver(&t, "alice", "msg1", Some(&service_header()), payload).await,
        StatusCode::OK
    );
    // A second delivery of the same id conflicts.
    assert_eq!(
        deliver(&t, "alice", "msg1", Some(&service_header()), payload).await,
        StatusCode::CONFLICT
    );

    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert!(b.ids("").await.is_empty(), "not in the default namespace");
    assert_eq!(b.ids("?namespace=MX").await, ["msg1"]);
    assert_eq!(b.ids("?namespace=MX&filter_flag=PENDING").await, ["msg1"]);
    let stored = b
        .get("msg1", "?namespace=MX", None)
        .await
        .bytes()
        .await
        .unwrap();
    let (preamble, used) = Preamble::parse(&stored).unwrap();
    assert_eq!(preamble.scheme(), Scheme::External);
    assert_eq!(preamble.blob_id(), "msg1");
    assert_eq!(preamble.plaintext_size(), payload.len() as u64);
    assert_eq!(&stored[used..], payload);
    // Usage counts the stored bytes, preamble included, and the blob's two files.
    assert_eq!(
        b.usage().await.0,
        stored.len() as u64 + 2 * ENTRY_OVERHEAD_BYTES
    );

    // The consumer flags it as in the incoming loop.
    assert_eq!(
        b.flags("msg1", "?namespace=MX", r#"["PROCESSING"]"#).await,
        StatusCode::NO_CONTENT
    );
    assert!(b.ids("?namespace=MX&filter_flag=PENDING").await.is_empty());
    t.shutdown().await;
}

#[tokio::test]
async fn delivery_refused_without_service_token_and_on_users_port() {
    let t = TestServer::start().await;
    assert_eq!(
        deliver(&t, "alice", "m", None, b"x").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(
            &t,
            "alice",
            "m",
            Some(&auth_header("incoming", "bad")),
            b"x"
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(&t, "alice", "m", Some(&t.alice.header), b"x").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(&t, "alice", "bad.id", Some(&service_header()), b"x").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        deliver(&t, "al%2Fice", "m", Some(&service_header()), b"x").await,
        StatusCode::BAD_REQUEST
    );

    // The users API does not serve the incoming route, whoever asks.
    let on_users = |auth: String| {
        t.client
            .put(t.url("/incoming/alice/m"))
            .header("authorization", auth)
            .body("x")
            .send()
    };
    assert_eq!(
        on_users(t.alice.header.clone()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        on_users(service_header()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The services API serves nothing of the users API.
    let response = t
        .plain
        .get(t.services_url("/blobs/alice"))
        .header("authorization", service_header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A chunked delivery without a length is refused (the preamble records it).
    let addr = t.running().services_addr();
    let request = format!(
        "PUT /incoming/alice/m2 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        service_header()
    );
    let (status, _) = tokio::task::spawn_blocking(move || raw_tcp(addr, request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status, 400);

    let b = Blobs {
        t: &t,
        who: &t.alice,
    };
    assert!(b.ids("?namespace=MX").await.is_empty());
    assert_eq!(b.usage().await.0, 0);
    t.shutdown().await;
}
