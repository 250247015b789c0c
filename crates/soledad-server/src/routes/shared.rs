//! The shared store routes (key backups), in the shape of u1db's HTTP API:
//!
//! * `GET /shared/doc/{id}` → the stored bytes, their content type, and the
//!   revision in the `x-u1db-rev` header;
//! * `PUT /shared/doc/{id}[?old_rev=R]` → `{"rev": new}` (201 created, 200
//!   updated); 409 when `old_rev` is missing, stale, or given for an absent
//!   document;
//! * `DELETE /shared/doc/{id}?old_rev=R` → 204; 404 when absent, 409 on a
//!   missing or stale rev.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;

use super::AppState;
use super::extract::{Params, QueryArgs};
use crate::error::Error;
use crate::shared::{SharedDocId, SharedRev};

/// Header carrying a shared document's revision.
pub(crate) const REV_HEADER: &str = "x-u1db-rev";

/// The `old_rev` query argument.
#[derive(Deserialize)]
pub(crate) struct RevArg {
    old_rev: Option<String>,
}

/// `GET /shared/doc/{id}`.
pub(crate) async fn get_doc(
    State(state): State<AppState>,
    Params(id): Params<String>,
) -> Result<Response, Error> {
    let id = SharedDocId::parse(&id)?;
    let doc = state.shared.get(&id).await?.ok_or(Error::NotFound)?;
    let content_type = doc
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let rev = HeaderValue::from_str(doc.rev.as_str()).map_err(|_| Error::InvalidRequest {
        what: "stored revision",
    })?;
    let mut response = doc.content.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response.headers_mut().insert(REV_HEADER, rev);
    Ok(response)
}

/// `PUT /shared/doc/{id}`.
pub(crate) async fn put_doc(
    State(state): State<AppState>,
    Params(id): Params<String>,
    QueryArgs(arg): QueryArgs<RevArg>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let id = SharedDocId::parse(&id)?;
    let limit = state.shared_doc_max_bytes;
    let too_big = Error::DocumentTooBig { limit_bytes: limit };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit) {
        return Err(too_big);
    }
    let mut content = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::InvalidRequest { what: "body" })?;
        if u64::try_from(content.len() + chunk.len()).map_or(true, |len| len > limit) {
            return Err(too_big);
        }
        content.extend_from_slice(&chunk);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let old_rev = arg.old_rev.map(SharedRev::new);
    let creating = old_rev.is_none();
    let rev = state
        .shared
        .put(&id, old_rev.as_ref(), content, content_type)
        .await?;
    let status = if creating {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::json!({ "rev": rev.as_str() }))).into_response())
}

/// `DELETE /shared/doc/{id}?old_rev=R`.
pub(crate) async fn delete_doc(
    State(state): State<AppState>,
    Params(id): Params<String>,
    QueryArgs(arg): QueryArgs<RevArg>,
) -> Result<StatusCode, Error> {
    let id = SharedDocId::parse(&id)?;
    let Some(rev) = arg.old_rev.map(SharedRev::new) else {
        return Err(match state.shared.get(&id).await? {
            Some(_) => Error::RevisionConflict,
            None => Error::NotFound,
        });
    };
    state.shared.delete(&id, &rev).await?;
    Ok(StatusCode::NO_CONTENT)
}
