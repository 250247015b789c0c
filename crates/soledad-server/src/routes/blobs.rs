//! The public blobs API, as in the seed's table:
//!
//! | route | method | action | query |
//! |---|---|---|---|
//! | `/blobs/{uuid}` | GET | list ids (JSON list), or `{"count": n}` with `only_count` | `namespace`, `filter_flag`, `order_by` (`date`, `+date`, `-date`), `deleted`, `only_count` |
//! | `/blobs/{uuid}/{blob_id}` | GET | content (`Range` → 206 / 416), or the flags (JSON list) with `only_flags` | `namespace`, `only_flags` |
//! | `/blobs/{uuid}/{blob_id}` | PUT | create (409 if it exists, 507 over quota) | `namespace` |
//! | `/blobs/{uuid}/{blob_id}` | POST | set flags from a JSON list (406 for an unknown flag) | `namespace` |
//! | `/blobs/{uuid}/{blob_id}` | DELETE | delete | `namespace` |
//! | `/usage/{uuid}` | GET | `{"used_bytes", "limit_bytes"}` | |
//!
//! Bodies stream both ways; memory is bounded by the chunk size. Every call goes
//! through the [`BlobBackend`] trait. Every route
//! has [`Access::Owner`](crate::auth::access::Access::Owner): handlers act for
//! the [`Owner`] extractor's user, never for path text.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;

use super::AppState;
use super::extract::{Params, QueryArgs};
use crate::auth::access::Owner;
use crate::blobs::{
    BlobBackend, BlobError, BlobId, ByteStream, Flag, ListQuery, Namespace, Order, RangeSpec,
};
use crate::error::Error;
use crate::notify::ChangeKind;

/// Longest flags body accepted by `POST`.
const MAX_FLAGS_BODY: usize = 4096;

/// Query arguments of the blob routes.
#[derive(Deserialize, Default)]
pub(crate) struct BlobArgs {
    namespace: Option<String>,
    filter_flag: Option<String>,
    order_by: Option<String>,
    deleted: Option<String>,
    only_count: Option<String>,
    only_flags: Option<String>,
}

impl BlobArgs {
    fn namespace(&self) -> Result<Namespace, Error> {
        match self.namespace.as_deref() {
            None | Some("") => Ok(Namespace::default()),
            Some(ns) => Ok(Namespace::parse(ns)?),
        }
    }

    /// The listing `GET /blobs/{uuid}` asks for, and whether it asks only for the count.
    pub(crate) fn list_query(&self) -> Result<(ListQuery, bool), Error> {
        let query = ListQuery {
            namespace: self.namespace()?,
            filter_flag: self.filter_flag.as_deref().map(Flag::parse).transpose()?,
            order: order_arg(self.order_by.as_deref())?,
            deleted: flag_arg(self.deleted.as_deref(), "deleted")?,
        };
        Ok((query, flag_arg(self.only_count.as_deref(), "only_count")?))
    }
}

fn backend(state: &AppState) -> Result<&dyn BlobBackend, Error> {
    state.blobs.as_deref().ok_or(Error::NotFound)
}

/// Parses a boolean query flag (`true`/`1`/`yes`, `false`/`0`/`no`/empty).
fn flag_arg(value: Option<&str>, what: &'static str) -> Result<bool, Error> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(_) => Err(Error::InvalidRequest { what }),
    }
}

fn order_arg(value: Option<&str>) -> Result<Option<Order>, Error> {
    match value {
        None | Some("") => Ok(None),
        // `+` in a query string decodes to a space.
        Some("date" | "+date" | " date") => Ok(Some(Order::DateAscending)),
        Some("-date") => Ok(Some(Order::DateDescending)),
        Some(_) => Err(Error::InvalidRequest { what: "order_by" }),
    }
}

/// The blob a `/blobs/{uuid}/{blob_id}` route names (the owner comes from
/// [`Owner`]).
#[derive(Deserialize)]
pub(crate) struct BlobPath {
    blob_id: String,
}

impl BlobPath {
    fn id(&self) -> Result<BlobId, Error> {
        Ok(BlobId::parse(&self.blob_id)?)
    }
}

/// `GET /blobs/{uuid}`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Owner(user): Owner,
    QueryArgs(args): QueryArgs<BlobArgs>,
) -> Result<Response, Error> {
    let backend = backend(&state)?;
    let (query, only_count) = args.list_query()?;
    if only_count {
        let count = backend.count(&user, &query).await?;
        return Ok(Json(serde_json::json!({ "count": count })).into_response());
    }
    Ok(Json(backend.list(&user, &query).await?).into_response())
}

/// `GET /usage/{uuid}`.
pub(crate) async fn usage(
    State(state): State<AppState>,
    Owner(user): Owner,
) -> Result<Response, Error> {
    let usage = backend(&state)?.usage(&user).await?;
    Ok(Json(serde_json::json!({
        "used_bytes": usage.used_bytes,
        "limit_bytes": usage.limit_bytes,
    }))
    .into_response())
}

/// Parses a single-range `Range` header. Anything else (several ranges, other
/// units, garbage) is ignored, as RFC 9110 allows: the whole blob is sent.
pub(crate) fn range_header(headers: &HeaderMap) -> Option<RangeSpec> {
    let value = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        return Some(RangeSpec::Suffix {
            len: end.parse().ok()?,
        });
    }
    Some(RangeSpec::From {
        start: start.parse().ok()?,
        end_inclusive: if end.is_empty() {
            None
        } else {
            Some(end.parse().ok()?)
        },
    })
}

fn header_value(value: String) -> Result<HeaderValue, Error> {
    HeaderValue::try_from(value).map_err(|_| Error::InvalidRequest { what: "header" })
}

/// `GET /blobs/{uuid}/{blob_id}`.
pub(crate) async fn get_blob(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params(path): Params<BlobPath>,
    QueryArgs(args): QueryArgs<BlobArgs>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let backend = backend(&state)?;
    let id = path.id()?;
    let ns = args.namespace()?;
    if flag_arg(args.only_flags.as_deref(), "only_flags")? {
        let flags = backend.get_flags(&user, &ns, &id).await?;
        return Ok(Json(flags).into_response());
    }
    let range = range_header(&headers);
    let read = backend.get(&user, &ns, &id, range).await?;
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Body::from_stream(read.body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(read.len));
    if range.is_some() {
        let last = (read.start + read.len).saturating_sub(1);
        out.insert(
            header::CONTENT_RANGE,
            header_value(format!("bytes {}-{last}/{}", read.start, read.total_size))?,
        );
    }
    Ok(response)
}

/// The announced body length, if any.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Error::InvalidRequest {
                    what: "content-length",
                })
        })
        .transpose()
}

/// A request body as the backend's byte stream.
pub(crate) fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// `PUT /blobs/{uuid}/{blob_id}`.
pub(crate) async fn put_blob(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params(path): Params<BlobPath>,
    QueryArgs(args): QueryArgs<BlobArgs>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let backend = backend(&state)?;
    let id = path.id()?;
    let ns = args.namespace()?;
    let length = content_length(&headers)?;
    let stored = backend
        .put(&user, &ns, &id, body_stream(body), length, &[])
        .await?;
    state.notifier.notify(&user, ChangeKind::Blobs, None).await;
    Ok(Json(serde_json::json!({ "size": stored })).into_response())
}

/// `POST /blobs/{uuid}/{blob_id}`: body is a JSON list of flags.
pub(crate) async fn set_flags(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params(path): Params<BlobPath>,
    QueryArgs(args): QueryArgs<BlobArgs>,
    body: Body,
) -> Result<StatusCode, Error> {
    let backend = backend(&state)?;
    let id = path.id()?;
    let ns = args.namespace()?;
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::InvalidRequest { what: "body" })?;
        if bytes.len() + chunk.len() > MAX_FLAGS_BODY {
            return Err(Error::InvalidRequest {
                what: "flags body too long",
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let flags = flags_body(&bytes)?;
    backend.set_flags(&user, &ns, &id, flags).await?;
    state.notifier.notify(&user, ChangeKind::Blobs, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses the body of `POST /blobs/{uuid}/{blob_id}`: a JSON list of flag names.
pub(crate) fn flags_body(bytes: &[u8]) -> Result<Vec<Flag>, Error> {
    let names: Vec<String> = serde_json::from_slice(bytes).map_err(|_| Error::InvalidRequest {
        what: "flags must be a JSON list of strings",
    })?;
    Ok(names
        .iter()
        .map(|name| Flag::parse(name))
        .collect::<Result<Vec<_>, BlobError>>()?)
}

/// `DELETE /blobs/{uuid}/{blob_id}`.
pub(crate) async fn delete_blob(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params(path): Params<BlobPath>,
    QueryArgs(args): QueryArgs<BlobArgs>,
) -> Result<StatusCode, Error> {
    let backend = backend(&state)?;
    let id = path.id()?;
    let ns = args.namespace()?;
    backend.delete(&user, &ns, &id).await?;
    state.notifier.notify(&user, ChangeKind::Blobs, None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> Option<RangeSpec> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, value.parse().unwrap());
        range_header(&headers)
    }

    #[test]
    fn range_headers() {
        assert_eq!(
            range("bytes=2-5"),
            Some(RangeSpec::From {
                start: 2,
                end_inclusive: Some(5)
            })
        );
        assert_eq!(
            range("bytes=7-"),
            Some(RangeSpec::From {
                start: 7,
                end_inclusive: None
            })
        );
        assert_eq!(range("bytes=-3"), Some(RangeSpec::Suffix { len: 3 }));
        for ignored in [
            "bytes=1-2,4-5",
            "items=1-2",
            "bytes=x-2",
            "bytes=-",
            "bytes=1-x",
        ] {
            assert_eq!(range(ignored), None, "{ignored}");
        }
    }
}
