//! Attack: connections that complete the TLS handshake (ALPN `h2` or
//! `http/1.1`) or connect to the services API and never send a request, and
//! more connections than the server will hold.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{Server, eventually, time_until_closed};

/// The configured idle timeout, and the slack allowed on top of it.
const IDLE: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test]
async fn idle_tls_connections_are_closed_within_the_idle_timeout() {
    let t = Server::start("idle_timeout_secs = 2\n").await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let mut stream = t.tls(alpn).await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        let waited = time_until_closed(&mut stream).await;
        assert!(
            waited >= IDLE - Duration::from_millis(500) && waited <= IDLE + SLACK,
            "{}: closed after {waited:?}",
            String::from_utf8_lossy(alpn)
        );
    }
    let mut plain = TcpStream::connect(t.services).await.unwrap();
    let waited = time_until_closed(&mut plain).await;
    assert!(
        waited <= IDLE + SLACK,
        "services API: closed after {waited:?}"
    );
}

/// HTTP/2 frames of a client that asks for `GET /` and then stays silent.
fn h2_request() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS, empty.
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    // HEADERS on stream 1, END_STREAM | END_HEADERS: :method GET, :scheme
    // https, :path /, :authority 127.0.0.1 (HPACK static indexes + literal).
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 9];
    block.extend_from_slice(b"127.0.0.1");
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    out
}

/// Whether `bytes` (server frames) hold a HEADERS frame on stream 1.
fn has_response_headers(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        let (kind, stream) = (
            rest[3],
            u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]),
        );
        if kind == 1 && stream & 0x7fff_ffff == 1 {
            return true;
        }
        rest = rest.get(9 + len..).unwrap_or_default();
    }
    false
}

#[tokio::test]
async fn connections_idle_after_a_request_are_closed_too() {
    let t = Server::start("idle_timeout_secs = 2\n").await;
    // HTTP/2: one request, answered, then silence (pings would not count).
    let mut h2 = t.tls(b"h2").await.unwrap();
    h2.write_all(&h2_request()).await.unwrap();
    h2.flush().await.unwrap();
    let start = std::time::Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(crate::util::PATIENCE, h2.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("h2 connection still open after a request"),
        }
    }
    assert!(has_response_headers(&received), "the request was answered");
    assert!(
        start.elapsed() <= IDLE + SLACK,
        "h2 closed after {:?}",
        start.elapsed()
    );
    // HTTP/1.1 keep-alive: one request, answered, then silence.
    let mut h1 = t.tls(b"http/1.1").await.unwrap();
    h1.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    h1.flush().await.unwrap();
    let start = std::time::Instant::now();
    let mut text = Vec::new();
    let _ = tokio::time::timeout(crate::util::PATIENCE, h1.read_to_end(&mut text)).await;
    assert!(text.starts_with(b"HTTP/1.1 200"));
    assert!(
        start.elapsed() <= IDLE + SLACK,
        "http/1.1 closed after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_connection_that_never_finishes_the_tls_handshake_is_closed() {
    let t = Server::start("tls_handshake_timeout_secs = 2\nidle_timeout_secs = 60\n").await;
    let mut tcp = TcpStream::connect(t.users).await.unwrap();
    // Half a ClientHello record header, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let waited = time_until_closed(&mut tcp).await;
    assert!(waited <= IDLE + SLACK, "closed after {waited:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let t = Server::start("max_connections = 3\nidle_timeout_secs = 60\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(t.tls(b"http/1.1").await.unwrap());
    }
    // A fourth one is closed before its handshake completes.
    assert!(t.tls(b"http/1.1").await.is_err());
    // Requests on held connections still work.
    let mut first = held.remove(0);
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(crate::util::read_response(&mut first).await.0, 200);
    drop(first);
    eventually("a freed slot admits a new connection", || async {
        t.tls(b"http/1.1").await.is_ok()
    })
    .await;
}
