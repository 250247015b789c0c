//! A small client of Garage's K2V API (`doc/drafts/k2v-spec.md` of Garage):
//! items addressed by (partition key, sort key) holding one value or several
//! concurrent ones, with causality tokens; single-item read/insert, batch
//! insert/read/delete of ranges. Requests are signed with SigV4 (service
//! `k2v`), each bounded by a timeout, and fail over between the cluster's
//! endpoints: a node that refuses, times out or answers 5xx is skipped, the
//! next one tried, and the one that answered is preferred afterwards.
//!
//! Plain HTTP: Garage's AGPL crates are never linked (DESIGN §11).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::StreamExt as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::config::GarageConfig;
use super::error::GarageError;

/// Characters left as they are in a path segment or query value: the
/// unreserved set of RFC 3986, as SigV4 canonicalisation expects.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The header carrying causality tokens.
const CAUSALITY_HEADER: &str = "x-garage-causality-token";

/// Rounds over the endpoint list before giving up (a node being killed, the
/// cluster re-establishing quorum): each round tries every endpoint once.
const ROUNDS: u32 = 3;

/// Pause between rounds (doubled each round).
const ROUND_BACKOFF: Duration = Duration::from_millis(200);

/// Most items one K2V batch request carries; larger batches are split.
/// Garage's cost is mostly per item; small items cost ~30 % less in
/// requests of 256 than of 50 (measured on a loaded 3-node loopback cluster).
pub(crate) const MAX_BATCH_ITEMS: usize = 256;

/// Batch requests of one call in flight at once.
const REQUESTS_IN_FLIGHT: usize = 4;

/// Most value bytes one insert batch carries (before base64).
pub(crate) const MAX_BATCH_BYTES: usize = 8 << 20;

/// An opaque causality token: what a read saw, given back to a write so the
/// write supersedes exactly the values that were read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct CausalityToken(String);

#[cfg(test)]
impl CausalityToken {
    /// A token for unit tests of item parsing.
    pub(crate) fn for_tests(token: &str) -> CausalityToken {
        CausalityToken(token.to_owned())
    }
}

/// An item: its causality token and its values (`None`: a deletion marker),
/// several when writes were concurrent.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    /// Token to supersede these values.
    pub(crate) token: CausalityToken,
    /// The concurrent values (tombstones as `None`).
    pub(crate) values: Vec<Option<Bytes>>,
}

impl Item {
    /// The values that are not deletion markers.
    pub(crate) fn live(&self) -> impl Iterator<Item = &Bytes> {
        self.values.iter().flatten()
    }
}

/// A write of one item: `value` `None` deletes it (keeping causality).
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub(crate) partition: String,
    pub(crate) sort_key: String,
    pub(crate) token: Option<CausalityToken>,
    pub(crate) value: Option<Bytes>,
}

impl Write {
    /// Writes `value` at (`partition`, `sort_key`), superseding what `token` saw.
    pub(crate) fn put(
        partition: &str,
        sort_key: impl Into<String>,
        token: Option<CausalityToken>,
        value: impl Into<Bytes>,
    ) -> Write {
        Write {
            partition: partition.to_owned(),
            sort_key: sort_key.into(),
            token,
            value: Some(value.into()),
        }
    }

    fn len(&self) -> usize {
        self.value.as_ref().map_or(0, Bytes::len)
    }
}

/// A range (or single item) of one partition, for reading or deleting.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Range {
    pub(crate) partition_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limit: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) reverse: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) single_item: bool,
}

impl Range {
    /// Every item of `partition` whose sort key starts with `prefix`.
    pub(crate) fn prefix(partition: &str, prefix: &str) -> Range {
        Range {
            partition_key: partition.to_owned(),
            prefix: Some(prefix.to_owned()),
            ..Range::default()
        }
    }

    /// The single item (`partition`, `sort_key`).
    pub(crate) fn single(partition: &str, sort_key: &str) -> Range {
        Range {
            partition_key: partition.to_owned(),
            start: Some(sort_key.to_owned()),
            single_item: true,
            ..Range::default()
        }
    }
}

/// One page of a range read, items in sort key order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Page {
    pub(crate) items: Vec<(String, Item)>,
    /// The sort key to continue from when the limit cut the listing.
    pub(crate) next_start: Option<String>,
}

#[derive(Serialize)]
struct WireWrite<'a> {
    pk: &'a str,
    sk: &'a str,
    ct: Option<&'a str>,
    v: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePage {
    items: Vec<WireItem>,
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next_start: Option<String>,
}

#[derive(Deserialize)]
struct WireItem {
    sk: String,
    ct: String,
    v: Vec<Option<String>>,
}

impl WireItem {
    /// The sort key and the item, values decoded from base64.
    fn decode(self) -> Result<(String, Item), GarageError> {
        Ok((
            self.sk,
            Item {
                token: CausalityToken(self.ct),
                values: decode_values(self.v)?,
            },
        ))
    }
}

fn decode_values(values: Vec<Option<String>>) -> Result<Vec<Option<Bytes>>, GarageError> {
    values
        .into_iter()
        .map(|value| {
            value
                .map(|text| {
                    STANDARD.decode(text).map(Bytes::from).map_err(|_| {
                        GarageError::MalformedResponse {
                            what: "a value that is not base64",
                        }
                    })
                })
                .transpose()
        })
        .collect()
}

struct Inner {
    http: reqwest::Client,
    endpoints: Vec<String>,
    bucket: String,
    region: String,
    identity: Identity,
    timeout: Duration,
    preferred: AtomicUsize,
}

/// A K2V client of one bucket, shared (`Clone` is cheap).
#[derive(Clone)]
pub(crate) struct K2vClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for K2vClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K2vClient")
            .field("endpoints", &self.inner.endpoints)
            .field("bucket", &self.inner.bucket)
            .finish_non_exhaustive()
    }
}

/// How one attempt at one endpoint ended.
enum Attempt {
    Done(reqwest::Response),
    /// Try the next endpoint.
    Next(GarageError),
}

impl K2vClient {
    /// A client of `config`'s K2V endpoints and bucket.
    ///
    /// # Errors
    /// [`GarageError::Config`] with no endpoint or an unusable HTTP client.
    pub(crate) fn new(config: &GarageConfig) -> Result<K2vClient, GarageError> {
        if config.k2v_endpoints.is_empty() {
            return Err(GarageError::Config {
                what: "no K2V endpoint".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|_| GarageError::Config {
                what: "cannot build the HTTP client".to_owned(),
            })?;
        let identity: Identity = Credentials::new(
            config.key_id.clone(),
            config.secret_key.expose().to_owned(),
            None,
            None,
            "soledad-garage-config",
        )
        .into();
        Ok(K2vClient {
            inner: Arc::new(Inner {
                http,
                endpoints: config
                    .k2v_endpoints
                    .iter()
                    .map(|e| e.trim_end_matches('/').to_owned())
                    .collect(),
                bucket: config.bucket.clone(),
                region: config.region.clone(),
                identity,
                timeout: config.request_timeout,
                preferred: AtomicUsize::new(0),
            }),
        })
    }

    fn item_path(&self, partition: &str, sort_key: &str) -> String {
        format!(
            "/{}/{}?sort_key={}",
            utf8_percent_encode(&self.inner.bucket, ENCODE),
            utf8_percent_encode(partition, ENCODE),
            utf8_percent_encode(sort_key, ENCODE)
        )
    }

    fn bucket_path(&self, query: &str) -> String {
        let bucket = utf8_percent_encode(&self.inner.bucket, ENCODE);
        if query.is_empty() {
            format!("/{bucket}")
        } else {
            format!("/{bucket}?{query}")
        }
    }

    /// Signs and sends one request to one endpoint.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        endpoint: &str,
        method: &Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: &Bytes,
        timeout: Duration,
    ) -> Attempt {
        let url = format!("{endpoint}{path}");
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let signed = v4::SigningParams::builder()
            .identity(&self.inner.identity)
            .region(&self.inner.region)
            .name("k2v")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|_| GarageError::Signing)
            .and_then(|params| {
                let params = params.into();
                let signable = SignableRequest::new(
                    method.as_str(),
                    url.as_str(),
                    headers.iter().map(|(k, v)| (*k, v.as_str())),
                    SignableBody::Bytes(body),
                )
                .map_err(|_| GarageError::Signing)?;
                let (instructions, _) = sign(signable, &params)
                    .map_err(|_| GarageError::Signing)?
                    .into_parts();
                Ok(instructions)
            });
        let instructions = match signed {
            Ok(instructions) => instructions,
            Err(error) => return Attempt::Next(error),
        };
        let mut request = self
            .inner
            .http
            .request(method.clone(), &url)
            .timeout(timeout)
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_server_error() => {
                Attempt::Next(GarageError::ServerError {
                    status: response.status().as_u16(),
                })
            }
            Ok(response) => Attempt::Done(response),
            Err(error) => Attempt::Next(GarageError::Unreachable(error)),
        }
    }

    /// Sends a request, failing over between endpoints; any status below 500
    /// is returned to the caller.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<reqwest::Response, GarageError> {
        self.send_timed(method, path, headers, body, self.inner.timeout)
            .await
    }

    /// [`send`](Self::send) with each attempt bounded by `timeout` (long polls).
    async fn send_timed(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<reqwest::Response, GarageError> {
        let count = self.inner.endpoints.len();
        let mut last = GarageError::Config {
            what: "no K2V endpoint".to_owned(),
        };
        let mut backoff = ROUND_BACKOFF;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let first = self.inner.preferred.load(Ordering::Relaxed);
            for step in 0..count {
                let index = first.wrapping_add(step) % count.max(1);
                let Some(endpoint) = self.inner.endpoints.get(index) else {
                    continue;
                };
                match self
                    .attempt(endpoint, &method, path, headers, &body, timeout)
                    .await
                {
                    Attempt::Done(response) => {
                        self.inner.preferred.store(index, Ordering::Relaxed);
                        return Ok(response);
                    }
                    Attempt::Next(error @ GarageError::Signing) => return Err(error),
                    Attempt::Next(error) => {
                        tracing::debug!(endpoint, %error, "K2V endpoint failed, trying the next");
                        last = error;
                    }
                }
            }
        }
        Err(last)
    }

    /// Reads one item; `None` when it does not exist.
    ///
    /// # Errors
    /// [`GarageError`] when the cluster fails or answers out of the API.
    pub(crate) async fn read_item(
        &self,
        partition: &str,
        sort_key: &str,
    ) -> Result<Option<Item>, GarageError> {
        let path = self.item_path(partition, sort_key);
        let headers = [("accept", "application/json".to_owned())];
        let response = self
            .send(Method::GET, &path, &headers, Bytes::new())
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            status if !status.is_success() => {
                return Err(GarageError::Refused {
                    status: status.as_u16(),
                });
            }
            _ => {}
        }
        let token = response
            .headers()
            .get(CAUSALITY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| CausalityToken(v.to_owned()))
            .ok_or(GarageError::MalformedResponse {
                what: "no causality token",
            })?;
        let body = response.bytes().await.map_err(GarageError::Unreachable)?;
        let values: Vec<Option<String>> =
            serde_json::from_slice(&body).map_err(|_| GarageError::MalformedResponse {
                what: "an item that is not a JSON list of values",
            })?;
        Ok(Some(Item {
            token,
            values: decode_values(values)?,
        }))
    }

    /// Inserts one item, superseding what `token` saw.
    ///
    /// # Errors
    /// [`GarageError`]; an error does not mean nothing was stored (K2V).
    pub(crate) async fn insert_item(
        &self,
        partition: &str,
        sort_key: &str,
        token: Option<&CausalityToken>,
        value: Bytes,
    ) -> Result<(), GarageError> {
        let path = self.item_path(partition, sort_key);
        let mut headers = vec![("content-type", "application/octet-stream".to_owned())];
        if let Some(token) = token {
            headers.push((CAUSALITY_HEADER, token.0.clone()));
        }
        let response = self.send(Method::PUT, &path, &headers, value).await?;
        expect_success(response.status())
    }

    /// Inserts (or deletes) items, split into requests of bounded size. Not a
    /// transaction: on error, some may be stored.
    ///
    /// # Errors
    /// [`GarageError`].
    pub(crate) async fn insert_batch(&self, writes: &[Write]) -> Result<(), GarageError> {
        // Split into bounded requests, sent a few at a time: Garage applies
        // the items of one request one after the other.
        let mut chunks: Vec<&[Write]> = Vec::new();
        let mut start = 0;
        while start < writes.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while let Some(write) = writes.get(end) {
                if end > start
                    && (end - start >= MAX_BATCH_ITEMS
                        || bytes.saturating_add(write.len()) > MAX_BATCH_BYTES)
                {
                    break;
                }
                bytes = bytes.saturating_add(write.len());
                end += 1;
            }
            chunks.push(writes.get(start..end).unwrap_or_default());
            start = end;
        }
        // Made up front (a stream holding the closure trips the `Send`
        // inference of the boxed futures above).
        let requests: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.insert_chunk(chunk))
            .collect();
        let mut sent = futures_util::stream::iter(requests).buffer_unordered(REQUESTS_IN_FLIGHT);
        while let Some(result) = sent.next().await {
            result?;
        }
        Ok(())
    }

    async fn insert_chunk(&self, chunk: &[Write]) -> Result<(), GarageError> {
        let wire: Vec<WireWrite<'_>> = chunk
            .iter()
            .map(|w| WireWrite {
                pk: &w.partition,
                sk: &w.sort_key,
                ct: w.token.as_ref().map(|t| t.0.as_str()),
                v: w.value.as_ref().map(|v| STANDARD.encode(v)),
            })
            .collect();
        let body = serde_json::to_vec(&wire).map_err(|_| GarageError::MalformedItem {
            what: "an insert batch",
        })?;
        let headers = [("content-type", "application/json".to_owned())];
        let response = self
            .send(Method::POST, &self.bucket_path(""), &headers, body.into())
            .await?;
        expect_success(response.status())
    }

    /// Reads ranges (one [`Page`] per range, in order).
    ///
    /// # Errors
    /// [`GarageError`].
    pub(crate) async fn read_batch(&self, ranges: &[Range]) -> Result<Vec<Page>, GarageError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let body = serde_json::to_vec(ranges).map_err(|_| GarageError::MalformedItem {
            what: "a read batch",
        })?;
        let headers = [("content-type", "application/json".to_owned())];
        let response = self
            .send(
                Method::POST,
                &self.bucket_path("search"),
                &headers,
                body.into(),
            )
            .await?;
        expect_success(response.status())?;
        let body = response.bytes().await.map_err(GarageError::Unreachable)?;
        let pages: Vec<WirePage> =
            serde_json::from_slice(&body).map_err(|_| GarageError::MalformedResponse {
                what: "a read batch answer",
            })?;
        if pages.len() != ranges.len() {
            return Err(GarageError::MalformedResponse {
                what: "a read batch answer of another length",
            });
        }
        pages
            .into_iter()
            .map(|page| {
                let items = page
                    .items
                    .into_iter()
                    .map(WireItem::decode)
                    .collect::<Result<Vec<_>, GarageError>>()?;
                Ok(Page {
                    items,
                    next_start: if page.more { page.next_start } else { None },
                })
            })
            .collect()
    }

    /// Reads single items, `None` for those that do not exist (or are deleted).
    ///
    /// # Errors
    /// [`GarageError`].
    pub(crate) async fn read_items(
        &self,
        partition: &str,
        sort_keys: &[String],
    ) -> Result<Vec<Option<Item>>, GarageError> {
        let requests: Vec<_> = sort_keys
            .chunks(MAX_BATCH_ITEMS)
            .map(|chunk| self.read_chunk(partition, chunk))
            .collect();
        let mut pages = futures_util::stream::iter(requests).buffered(REQUESTS_IN_FLIGHT);
        let mut out = Vec::with_capacity(sort_keys.len());
        while let Some(found) = pages.next().await {
            out.extend(found?);
        }
        Ok(out)
    }

    async fn read_chunk(
        &self,
        partition: &str,
        chunk: &[String],
    ) -> Result<Vec<Option<Item>>, GarageError> {
        let ranges: Vec<Range> = chunk
            .iter()
            .map(|sk| Range::single(partition, sk))
            .collect();
        let pages = self.read_batch(&ranges).await?;
        Ok(chunk
            .iter()
            .zip(pages)
            .map(|(sort_key, page)| {
                page.items
                    .into_iter()
                    .find(|(sk, _)| sk == sort_key)
                    .map(|(_, item)| item)
            })
            .collect())
    }

    /// Every item of `range`, following pages.
    ///
    /// # Errors
    /// [`GarageError`].
    pub(crate) async fn read_all(&self, range: Range) -> Result<Vec<(String, Item)>, GarageError> {
        let mut items = Vec::new();
        let mut range = range;
        loop {
            let mut pages = self.read_batch(std::slice::from_ref(&range)).await?;
            let page = pages.pop().unwrap_or_default();
            items.extend(page.items);
            match page.next_start {
                Some(next) => range.start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Deletes every item of each range.
    ///
    /// # Errors
    /// [`GarageError`].
    pub(crate) async fn delete_batch(&self, ranges: &[Range]) -> Result<(), GarageError> {
        for chunk in ranges.chunks(MAX_BATCH_ITEMS) {
            let body = serde_json::to_vec(chunk).map_err(|_| GarageError::MalformedItem {
                what: "a delete batch",
            })?;
            let headers = [("content-type", "application/json".to_owned())];
            let response = self
                .send(
                    Method::POST,
                    &self.bucket_path("delete"),
                    &headers,
                    body.into(),
                )
                .await?;
            expect_success(response.status())?;
        }
        Ok(())
    }
}

fn expect_success(status: StatusCode) -> Result<(), GarageError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(GarageError::Refused {
            status: status.as_u16(),
        })
    }
}

// ---- Long polls (PollRange), used by the change notifier (`notify.rs`). ----

/// Longest wait K2V accepts for one poll.
pub(crate) const MAX_POLL: Duration = Duration::from_secs(600);

/// What a PollRange answered with changes: the items that changed (all of
/// the range when no seen marker was given) and the marker to poll from next.
#[derive(Clone, Debug)]
pub(crate) struct Polled {
    pub(crate) items: Vec<(String, Item)>,
    pub(crate) seen_marker: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WirePollRange<'a> {
    prefix: &'a str,
    timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_marker: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePolled {
    seen_marker: String,
    items: Vec<WireItem>,
}

impl K2vClient {
    /// PollRange over the items of `partition` whose sort key starts with
    /// `prefix`: without `seen_marker`, answers at once with every item;
    /// with one, waits up to `wait` (whole seconds, at least one, at most
    /// [`MAX_POLL`]) for an item to change after it. `None` when the wait
    /// ran out with no change.
    ///
    /// # Errors
    /// [`GarageError`].
    pub(crate) async fn poll_range(
        &self,
        partition: &str,
        prefix: &str,
        seen_marker: Option<&str>,
        wait: Duration,
    ) -> Result<Option<Polled>, GarageError> {
        let wait = wait.min(MAX_POLL);
        let seconds = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        let body = serde_json::to_vec(&WirePollRange {
            prefix,
            timeout: seconds,
            seen_marker,
        })
        .map_err(|_| GarageError::MalformedItem { what: "a poll" })?;
        let path = format!(
            "/{}/{}?poll_range",
            utf8_percent_encode(&self.inner.bucket, ENCODE),
            utf8_percent_encode(partition, ENCODE)
        );
        let headers = [("content-type", "application/json".to_owned())];
        // Garage answers 304 when its timeout runs out: allow it that long
        // plus the usual request time.
        let timeout = Duration::from_secs(seconds).saturating_add(self.inner.timeout);
        let response = self
            .send_timed(Method::POST, &path, &headers, body.into(), timeout)
            .await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        expect_success(response.status())?;
        let body = response.bytes().await.map_err(GarageError::Unreachable)?;
        let polled: WirePolled =
            serde_json::from_slice(&body).map_err(|_| GarageError::MalformedResponse {
                what: "a poll answer",
            })?;
        let items = polled
            .items
            .into_iter()
            .map(WireItem::decode)
            .collect::<Result<Vec<_>, GarageError>>()?;
        Ok(Some(Polled {
            items,
            seen_marker: polled.seen_marker,
        }))
    }
}
