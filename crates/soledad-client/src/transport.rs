//! HTTPS to the Soledad server: one persistent connection pool, the token header on
//! every request, and the server's certificate as the only trust anchor.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Body, Response, StatusCode};
use soledad_protocol::{
    AuthHeader, CHANGES_PATH, CHANGES_SINCE_PARAM, CHANGES_SOURCE_PARAM, CHANGES_WAIT_PARAM,
    ChangesResponse, ErrorBody, ErrorKind, RecordSyncInfo, SYNC_CONTENT_TYPE, SyncInfo,
    is_valid_marker,
};

use crate::error::Error;

/// Largest JSON response read into memory (sync info, record acknowledgements).
pub(crate) const MAX_JSON_RESPONSE_BYTES: u64 = 64 * 1024;
/// Largest shared document (the wrapped secrets backup, ~1 KB) read into memory.
pub(crate) const MAX_SHARED_DOC_RESPONSE_BYTES: u64 = 1 << 20;
/// Largest error body read (the server's `{"error", "message"}`); a longer one
/// is dropped unread and reported by its status alone.
pub(crate) const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// A client for one user on one server.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
    uuid: String,
    authorization: HeaderValue,
}

/// How much longer than its wait a change request may take before the client
/// gives up on the server.
pub(crate) const CHANGES_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an unused pooled connection is kept (below the server's idle timeout).
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Transport {
    /// Connects lazily to `server_url` (`https://host:port`), trusting only the
    /// certificate(s) in `cert_file` when given.
    pub(crate) fn new(
        server_url: &str,
        cert_file: Option<&Path>,
        uuid: &str,
        token: &str,
    ) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(8)
            // The server closes connections idle for `idle_timeout_secs`
            // (default 30 s): drop ours sooner, so a request never goes out
            // on a connection the server is closing.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(cert_file) = cert_file {
            builder = builder.tls_backend_preconfigured(tls_config(cert_file)?);
        } else {
            builder = builder.tls_backend_preconfigured(tls_config_webpki_free()?);
        }
        let http = builder.build().map_err(Error::network)?;
        let header = AuthHeader {
            uuid: uuid.to_owned(),
            token: token.to_owned(),
        };
        let mut authorization =
            HeaderValue::from_str(&header.to_header_value()).map_err(|_| Error::Auth)?;
        authorization.set_sensitive(true);
        Ok(Transport {
            http,
            base: server_url.trim_end_matches('/').to_owned(),
            uuid: uuid.to_owned(),
            authorization,
        })
    }

    /// The connection pool, base URL, user and authorization header, for the blob
    /// transport (`blobs/transport.rs`), which shares this client.
    pub(crate) fn parts(&self) -> (&reqwest::Client, &str, &str, &HeaderValue) {
        (&self.http, &self.base, &self.uuid, &self.authorization)
    }

    fn sync_url(&self, source_replica_uid: &str) -> String {
        format!(
            "{}/{}/sync-from/{}",
            self.base,
            soledad_protocol::user_db_name(&self.uuid),
            source_replica_uid
        )
    }

    /// `GET /user-{uuid}/sync-from/{source}`; `None` if the user's store does not exist.
    pub(crate) async fn sync_info(
        &self,
        source_replica_uid: &str,
    ) -> Result<Option<SyncInfo>, Error> {
        let response = self
            .http
            .get(self.sync_url(source_replica_uid))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(Error::network)?;
        if response.status() == StatusCode::NOT_FOUND {
            let (kind, message) = error_body(response).await;
            return match kind {
                Some(ErrorKind::DatabaseDoesNotExist) => Ok(None),
                _ => Err(Error::from_server(404, kind, message)),
            };
        }
        let bytes = ok_body(response, MAX_JSON_RESPONSE_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Protocol(soledad_protocol::ProtocolError::MalformedJson {
                what: "sync info",
                reason: e.to_string(),
            })
        })
    }

    /// `PUT /user-{uuid}/sync-from/{source}`.
    pub(crate) async fn record_sync_info(
        &self,
        source_replica_uid: &str,
        record: &RecordSyncInfo,
    ) -> Result<(), Error> {
        let body = serde_json::to_vec(record).map_err(|_| Error::Closed)?;
        let response = self
            .http
            .put(self.sync_url(source_replica_uid))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(Error::network)?;
        ok_body(response, MAX_JSON_RESPONSE_BYTES).await.map(|_| ())
    }

    /// `POST /user-{uuid}/sync-from/{source}` with a streamed framed body; returns the
    /// streamed framed response once the server has answered with a success status.
    pub(crate) async fn exchange<S>(
        &self,
        source_replica_uid: &str,
        frames: S,
    ) -> Result<impl Stream<Item = Result<Bytes, Error>> + use<S>, Error>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        // An empty chunk becomes an empty DATA frame; HTTP/2 servers (h2) count
        // those per connection and close it after 100 (GOAWAY ENHANCE_YOUR_CALM),
        // so a long-lived device's ~100th sync would fail. Never send one.
        let frames = frames.try_filter(|chunk| std::future::ready(!chunk.is_empty()));
        let response = self
            .http
            .post(self.sync_url(source_replica_uid))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, SYNC_CONTENT_TYPE)
            .body(Body::wrap_stream(frames))
            .send()
            .await
            .map_err(Error::network)?;
        let status = response.status();
        if !status.is_success() {
            let (kind, message) = error_body(response).await;
            return Err(Error::from_server(status.as_u16(), kind, message));
        }
        Ok(response.bytes_stream().map_err(Error::network))
    }

    /// `GET /changes/{uuid}`: waits (at most `wait`, capped by the server) until
    /// something of the user changed after `since`, leaving out documents
    /// `source_replica_uid` uploaded itself. The request gives up `wait` plus
    /// [`CHANGES_GRACE`] after it was sent (a silent, dead server).
    pub(crate) async fn wait_changes(
        &self,
        since: Option<&str>,
        source_replica_uid: &str,
        wait: std::time::Duration,
    ) -> Result<ChangesResponse, Error> {
        // Replica uids and markers are URL-safe but for `%` (a replica uid may
        // hold one), which must reach the server as itself.
        let mut url = format!(
            "{}{}{}?{}={}&{}={}",
            self.base,
            CHANGES_PATH,
            self.uuid,
            CHANGES_SOURCE_PARAM,
            source_replica_uid.replace('%', "%25"),
            CHANGES_WAIT_PARAM,
            wait.as_secs()
        );
        if let Some(since) = since {
            url.push_str(&format!("&{CHANGES_SINCE_PARAM}={since}"));
        }
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(wait.saturating_add(CHANGES_GRACE))
            .send()
            .await
            .map_err(Error::network)?;
        let bytes = ok_body(response, MAX_JSON_RESPONSE_BYTES).await?;
        let answer: ChangesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Protocol(soledad_protocol::ProtocolError::MalformedJson {
                what: "changes",
                reason: e.to_string(),
            })
        })?;
        if !is_valid_marker(&answer.marker) {
            return Err(Error::Protocol(
                soledad_protocol::ProtocolError::MalformedJson {
                    what: "changes",
                    reason: "invalid marker".to_owned(),
                },
            ));
        }
        Ok(answer)
    }

    /// `GET /shared/doc/{id}`: the stored bytes and their revision, `None` if absent.
    pub(crate) async fn shared_get(&self, id: &str) -> Result<Option<SharedDoc>, Error> {
        let response = self
            .http
            .get(format!("{}/shared/doc/{}", self.base, id))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(Error::network)?;
        if response.status() == StatusCode::NOT_FOUND {
            let (kind, message) = error_body(response).await;
            return match kind {
                Some(ErrorKind::NotFound | ErrorKind::DocumentDoesNotExist) => Ok(None),
                _ => Err(Error::from_server(404, kind, message)),
            };
        }
        let rev = response
            .headers()
            .get(SHARED_REV_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(Error::Protocol(
                soledad_protocol::ProtocolError::MalformedJson {
                    what: "shared document",
                    reason: "missing revision header".to_owned(),
                },
            ))?;
        let content = ok_body(response, MAX_SHARED_DOC_RESPONSE_BYTES).await?;
        Ok(Some(SharedDoc { content, rev }))
    }

    /// `PUT /shared/doc/{id}`: creates (no `old_rev`) or replaces the document.
    pub(crate) async fn shared_put(
        &self,
        id: &str,
        content: &str,
        old_rev: Option<&str>,
    ) -> Result<(), Error> {
        let mut url = format!("{}/shared/doc/{}", self.base, id);
        if let Some(rev) = old_rev {
            url.push_str("?old_rev=");
            url.push_str(rev);
        }
        let response = self
            .http
            .put(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(content.to_owned())
            .send()
            .await
            .map_err(Error::network)?;
        ok_body(response, MAX_JSON_RESPONSE_BYTES).await.map(|_| ())
    }

    /// `DELETE /shared/doc/{id}?old_rev=…`.
    pub(crate) async fn shared_delete(&self, id: &str, rev: &str) -> Result<(), Error> {
        let response = self
            .http
            .delete(format!("{}/shared/doc/{}?old_rev={}", self.base, id, rev))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(Error::network)?;
        ok_body(response, MAX_JSON_RESPONSE_BYTES).await.map(|_| ())
    }
}

/// Header carrying a shared document's revision.
const SHARED_REV_HEADER: &str = soledad_protocol::REV_HEADER;

/// A document of the shared store as the server returns it.
#[derive(Debug, Clone)]
pub(crate) struct SharedDoc {
    /// The opaque content (our backup JSON).
    pub(crate) content: Bytes,
    /// Its revision, needed to replace or delete it.
    pub(crate) rev: String,
}

/// The body of a success response, at most `limit` bytes; an error status
/// becomes an [`Error`].
async fn ok_body(response: Response, limit: u64) -> Result<Bytes, Error> {
    let status = response.status();
    if !status.is_success() {
        let (kind, message) = error_body(response).await;
        return Err(Error::from_server(status.as_u16(), kind, message));
    }
    read_bounded(response, limit).await
}

/// Reads a whole body of at most `limit` bytes, chunk by chunk: a body longer
/// than announced, or announced longer than `limit`, stops the read with
/// [`Error::ResponseTooLarge`] before more than `limit` bytes are held.
async fn read_bounded(mut response: Response, limit: u64) -> Result<Bytes, Error> {
    let too_large = Error::ResponseTooLarge { limit_bytes: limit };
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(too_large);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::network)? {
        let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The kind and message of an error response (best effort: a body that is not our
/// JSON, or longer than [`MAX_ERROR_BODY_BYTES`], yields no kind).
async fn error_body(response: Response) -> (Option<ErrorKind>, String) {
    let status = response.status();
    let bytes = read_bounded(response, MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => (body.kind(), body.message),
        Err(_) => (None, format!("HTTP {status}")),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS trusting exactly the certificates of `cert_file` (PEM), as the seed's
/// `cert_file` option: the provider's self-signed certificate is the trust anchor.
fn tls_config(cert_file: &Path) -> Result<rustls::ClientConfig, Error> {
    let pem = std::fs::read(cert_file)?;
    let mut roots = rustls::RootCertStore::empty();
    let mut found = false;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|_| Error::Certificate("not a PEM certificate file"))?;
        roots
            .add(cert)
            .map_err(|_| Error::Certificate("certificate not usable as a trust anchor"))?;
        found = true;
    }
    if !found {
        return Err(Error::Certificate("no certificate in the file"));
    }
    finish_tls(roots)
}

/// TLS with no trust anchor at all: every server is refused. The client without a
/// `cert_file` cannot talk to a server, by design (no system roots: Soledad pins the
/// provider's certificate).
fn tls_config_webpki_free() -> Result<rustls::ClientConfig, Error> {
    finish_tls(rustls::RootCertStore::empty())
}

fn finish_tls(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::Certificate("no TLS protocol version available"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A loopback HTTP/1.1 server answering one request with `status` and a
    /// chunked body of `body_len` bytes (length not announced).
    async fn serve_once(status: u16, body_len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                 transfer-encoding: chunked\r\n\r\n"
            );
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 16 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = chunk.len().min(body_len - sent);
                let framed = format!("{n:x}\r\n");
                if socket.write_all(framed.as_bytes()).await.is_err()
                    || socket.write_all(&chunk[..n]).await.is_err()
                    || socket.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
                sent += n;
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        format!("http://{addr}/")
    }

    async fn get(url: &str) -> Response {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new().get(url).send().await.unwrap()
    }

    #[tokio::test]
    async fn a_body_longer_than_its_limit_is_refused_without_reading_it_all() {
        let url = serve_once(200, 8 << 20).await;
        let result = ok_body(get(&url).await, MAX_JSON_RESPONSE_BYTES).await;
        assert!(
            matches!(
                result,
                Err(Error::ResponseTooLarge { limit_bytes }) if limit_bytes == MAX_JSON_RESPONSE_BYTES
            ),
            "{result:?}"
        );
        let url = serve_once(200, 1000).await;
        let body = ok_body(get(&url).await, MAX_JSON_RESPONSE_BYTES)
            .await
            .unwrap();
        assert_eq!(body.len(), 1000);
    }

    #[tokio::test]
    async fn a_huge_error_body_is_reported_by_its_status() {
        let url = serve_once(500, 8 << 20).await;
        let (kind, message) = error_body(get(&url).await).await;
        assert_eq!(kind, None);
        assert_eq!(message, "HTTP 500 Internal Server Error");
    }
}
