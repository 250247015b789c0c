//! The public blobs HTTP API (`/blobs/{uuid}…`) over the client's connection pool
//! ([`Transport`]): streamed uploads from the encrypted
//! file, streamed and resumable (`Range`) downloads into a partial file, flags,
//! listings. Every failure is classified once here: retry later, or final.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE,
};
use reqwest::{Body, Response, StatusCode};
use soledad_protocol::{ErrorBody, ErrorKind};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::progress::Counter;
use super::types::{Flag, Order, RemoteListQuery};
use crate::error::Error;
use crate::transport::Transport;

/// Largest JSON body read into memory (listings of ids).
const MAX_JSON_BYTES: usize = 64 << 20;
/// Read size of uploads and write buffer of downloads.
const CHUNK_BYTES: usize = 256 * 1024;

/// A failed request: worth retrying, or not.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Network error, server busy or failing, cut body.
    Retry(Error),
    /// Refused for good (not found, exists, auth, quota, bad request).
    Final(Error),
}

impl Failure {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Retry(e) | Failure::Final(e) => e,
        }
    }
}

impl From<std::io::Error> for Failure {
    /// Local disk errors are final: retrying will not free the disk.
    fn from(err: std::io::Error) -> Self {
        Failure::Final(Error::Io(err))
    }
}

fn network(err: impl std::error::Error + Send + Sync + 'static) -> Failure {
    Failure::Retry(Error::network(err))
}

/// The blobs API of one user.
#[derive(Clone)]
pub(crate) struct BlobTransport {
    http: reqwest::Client,
    base: String,
    authorization: HeaderValue,
}

impl BlobTransport {
    pub(crate) fn new(transport: &Transport) -> Self {
        let (http, base, uuid, authorization) = transport.parts();
        BlobTransport {
            http: http.clone(),
            base: format!("{base}/blobs/{uuid}"),
            authorization: authorization.clone(),
        }
    }

    /// `…/blobs/{uuid}/{id}?namespace=…` (ids and namespaces are `[A-Za-z0-9_-]`).
    fn blob_url(&self, namespace: &str, blob_id: &str) -> String {
        format!("{}/{blob_id}?namespace={namespace}", self.base)
    }

    /// `PUT`: streams `len` bytes of the file at `path`; `sent` counts them.
    pub(crate) async fn upload(
        &self,
        namespace: &str,
        blob_id: &str,
        path: &Path,
        sent: Arc<Counter>,
    ) -> Result<(), Failure> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        sent.store(0);
        let chunks = futures_util::stream::unfold(file, move |mut file| {
            let sent = sent.clone();
            async move {
                let mut buf = vec![0u8; CHUNK_BYTES];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        sent.fetch_add(n as u64);
                        Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), file))
                    }
                    Err(err) => Some((Err(err), file)),
                }
            }
        });
        let response = self
            .http
            .put(self.blob_url(namespace, blob_id))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .body(Body::wrap_stream(chunks))
            .send()
            .await
            .map_err(network)?;
        check(response).await.map(|_| ())
    }

    /// `GET` into the partial file at `part`, resuming after its current length with
    /// `Range: bytes=<len>-`. `received` counts the bytes present (resumed prefix
    /// included), `total` the whole stored length once known. A body longer than
    /// `max_len` (when the expected blob is known) is refused as tampering.
    pub(crate) async fn download(
        &self,
        namespace: &str,
        blob_id: &str,
        part: &Path,
        progress: (&Counter, &Counter),
        max_len: Option<u64>,
    ) -> Result<(), Failure> {
        let (received, total) = progress;
        let too_long = |len: u64| max_len.is_some_and(|max| len > max);
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .await?;
        let have = file.metadata().await?.len();
        let mut request = self
            .http
            .get(self.blob_url(namespace, blob_id))
            .header(AUTHORIZATION, self.authorization.clone());
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let response = request.send().await.map_err(network)?;
        let start = match response.status() {
            StatusCode::OK => {
                file.set_len(0).await?;
                0
            }
            StatusCode::PARTIAL_CONTENT => {
                let from = content_range_start(&response);
                if from != Some(have) {
                    file.set_len(0).await?;
                    return Err(Failure::Retry(unexpected("Content-Range")));
                }
                have
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // The partial file is as long as the blob or longer: start over.
                file.set_len(0).await?;
                return Err(Failure::Retry(unexpected("range not satisfiable")));
            }
            _ => {
                return Err(check(response)
                    .await
                    .err()
                    .unwrap_or(Failure::Retry(unexpected("status"))));
            }
        };
        received.store(start);
        if let Some(len) = response.content_length() {
            let len = start.saturating_add(len);
            if too_long(len) {
                file.set_len(0).await?;
                return Err(Failure::Final(Error::Integrity { count: 1 }));
            }
            total.store(len);
        }
        let mut out = tokio::io::BufWriter::with_capacity(CHUNK_BYTES, file);
        let mut body = response.bytes_stream();
        let mut result = Ok(());
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    out.write_all(&chunk).await?;
                    let now = received.fetch_add(chunk.len() as u64);
                    if too_long(now.saturating_add(chunk.len() as u64)) {
                        result = Err(Failure::Final(Error::Integrity { count: 1 }));
                        break;
                    }
                }
                Err(err) => {
                    result = Err(network(err));
                    break;
                }
            }
        }
        // Keep what arrived (also after a cut): the next attempt resumes after it.
        out.flush().await?;
        out.get_ref().sync_all().await?;
        result
    }

    /// The first `len` stored bytes of a blob (its preamble), with `Range`.
    pub(crate) async fn head_bytes(
        &self,
        namespace: &str,
        blob_id: &str,
        len: usize,
    ) -> Result<Vec<u8>, Failure> {
        let response = self
            .http
            .get(self.blob_url(namespace, blob_id))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(RANGE, format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(network)?;
        let bytes = bounded(check(response).await?, len).await?;
        Ok(bytes
            .get(..len.min(bytes.len()))
            .unwrap_or_default()
            .to_vec())
    }

    /// `GET …?only_flags=true`.
    pub(crate) async fn get_flags(
        &self,
        namespace: &str,
        blob_id: &str,
    ) -> Result<Vec<Flag>, Failure> {
        let response = self
            .http
            .get(format!(
                "{}&only_flags=true",
                self.blob_url(namespace, blob_id)
            ))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(network)?;
        let names: Vec<String> = json(check(response).await?).await?;
        names
            .iter()
            .map(|n| Flag::parse(n))
            .collect::<Result<_, _>>()
            .map_err(|_| Failure::Final(unexpected("flags")))
    }

    /// `POST` a JSON list of flags.
    pub(crate) async fn set_flags(
        &self,
        namespace: &str,
        blob_id: &str,
        flags: &[Flag],
    ) -> Result<(), Failure> {
        let names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        let body = serde_json::to_vec(&names).map_err(|_| Failure::Final(Error::InvalidFlags))?;
        let response = self
            .http
            .post(self.blob_url(namespace, blob_id))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(network)?;
        check(response).await.map(|_| ())
    }

    /// `DELETE`.
    pub(crate) async fn delete(&self, namespace: &str, blob_id: &str) -> Result<(), Failure> {
        let response = self
            .http
            .delete(self.blob_url(namespace, blob_id))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(network)?;
        check(response).await.map(|_| ())
    }

    fn list_url(&self, namespace: &str, query: &RemoteListQuery, only_count: bool) -> String {
        let mut url = format!("{}?namespace={namespace}", self.base);
        if let Some(flag) = query.filter_flag {
            url.push_str("&filter_flag=");
            url.push_str(flag.as_str());
        }
        match query.order_by {
            Some(Order::DateAscending) => url.push_str("&order_by=date"),
            Some(Order::DateDescending) => url.push_str("&order_by=-date"),
            None => {}
        }
        if query.deleted {
            url.push_str("&deleted=true");
        }
        if only_count {
            url.push_str("&only_count=true");
        }
        url
    }

    /// `GET /blobs/{uuid}`: ids.
    pub(crate) async fn list(
        &self,
        namespace: &str,
        query: &RemoteListQuery,
    ) -> Result<Vec<String>, Failure> {
        let response = self
            .http
            .get(self.list_url(namespace, query, false))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(network)?;
        json(check(response).await?).await
    }

    /// `GET /blobs/{uuid}?only_count=true`.
    pub(crate) async fn count(
        &self,
        namespace: &str,
        query: &RemoteListQuery,
    ) -> Result<u64, Failure> {
        #[derive(serde::Deserialize)]
        struct Count {
            count: u64,
        }
        let response = self
            .http
            .get(self.list_url(namespace, query, true))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(network)?;
        let count: Count = json(check(response).await?).await?;
        Ok(count.count)
    }
}

fn unexpected(what: &'static str) -> Error {
    Error::Protocol(soledad_protocol::ProtocolError::MalformedJson {
        what: "blob response",
        reason: format!("unexpected {what}"),
    })
}

/// `bytes a-b/n` → `a`.
fn content_range_start(response: &Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// The response if its status is a success, else the classified failure.
async fn check(response: Response) -> Result<Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let bytes = bounded(response, 64 * 1024).await.unwrap_or_default();
    let (kind, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => (body.kind(), body.message),
        Err(_) => (None, format!("HTTP {status}")),
    };
    let code = status.as_u16();
    Err(match (code, kind) {
        (404, _) | (_, Some(ErrorKind::BlobNotFound)) => Failure::Final(Error::BlobNotFound),
        (409, _) | (_, Some(ErrorKind::BlobExists)) => Failure::Final(Error::BlobAlreadyExists),
        (406, _) | (_, Some(ErrorKind::InvalidFlag)) => Failure::Final(Error::InvalidFlags),
        (_, Some(ErrorKind::InvalidBlobId | ErrorKind::InvalidNamespace)) => {
            Failure::Final(Error::InvalidBlobId)
        }
        (507, _) | (_, Some(ErrorKind::QuotaExceeded)) => Failure::Final(Error::Server {
            kind: Some(ErrorKind::QuotaExceeded),
            message,
        }),
        (408 | 429, _) | (500..=599, _) | (_, Some(ErrorKind::BodyInterrupted)) => {
            Failure::Retry(Error::from_server(code, kind, message))
        }
        _ => Failure::Final(Error::from_server(code, kind, message)),
    })
}

/// At most `max` bytes of a body (a longer body is refused, not truncated).
async fn bounded(response: Response, max: usize) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(network)?;
        if out.len().saturating_add(chunk.len()) > max {
            return Err(Failure::Final(unexpected("body length")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, Failure> {
    let bytes = bounded(response, MAX_JSON_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|_| Failure::Final(unexpected("JSON")))
}
