//! Attack: connections that complete the TLS handshake (ALPN `h2` or
//! `http/1.1`) or connect to the services API and never send a request, and
//! more connections than the server will hold.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
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
