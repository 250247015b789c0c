//! The shared store routes (key backups), in the shape of u1db's HTTP API:
//!
//! * `GET /shared/doc/{id}` → the stored bytes, their content type, and the
//!   revision in the `x-u1db-rev` header;
//! * `PUT /shared/doc/{id}[?old_rev=R]` → `{"rev": new}` (201 created, 200
//!   updated); 409 when `old_rev` is missing, stale, or given for an absent
//!   document;
//! * `DELETE /shared/doc/{id}?old_rev=R` → 204; 404 when absent, 409 on a
//!   missing or stale rev.
//!
//! The routes name no owner ([`Access::AuthenticatedUser`]): documents are
//! scoped to the caller ([`AuthenticatedUser`]), so another user's document is
//! 404 like an absent one. Each user may miss (404 on `GET` or `DELETE`) at
//! most `shared_misses_per_minute` times a minute; beyond, every lookup is
//! 429 until the bucket refills. Documents count against the owner's quota
//! (507 when a write would pass it).
//!
//! [`Access::AuthenticatedUser`]: crate::auth::access::Access::AuthenticatedUser

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;

use super::AppState;
use super::extract::{Params, QueryArgs};
use crate::auth::access::AuthenticatedUser;
use crate::blobs::{ENTRY_OVERHEAD_BYTES, UserId};
use crate::error::Error;
use crate::shared::{SharedDoc, SharedDocId, SharedRev};

/// Header carrying a shared document's revision.
pub(crate) use soledad_protocol::REV_HEADER;

/// The `old_rev` query argument.
#[derive(Deserialize)]
pub(crate) struct RevArg {
    old_rev: Option<String>,
}

/// The caller's document, counting a miss against their bucket.
async fn lookup(state: &AppState, owner: &UserId, id: &SharedDocId) -> Result<SharedDoc, Error> {
    state.shared_misses.check(owner)?;
    match state.shared.get(owner, id).await? {
        Some(doc) => Ok(doc),
        None => {
            state.shared_misses.record_miss(owner);
            Err(Error::NotFound)
        }
    }
}

/// `GET /shared/doc/{id}`.
pub(crate) async fn get_doc(
    State(state): State<AppState>,
    AuthenticatedUser(owner): AuthenticatedUser,
    Params(id): Params<String>,
) -> Result<Response, Error> {
    let id = SharedDocId::parse(&id)?;
    let doc = lookup(&state, &owner, &id).await?;
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
    AuthenticatedUser(owner): AuthenticatedUser,
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
    // Each stored entry costs at least one entry of quota (issue 8), like a blob file.
    let size = u64::try_from(content.len())
        .map_err(|_| too_big)?
        .saturating_add(ENTRY_OVERHEAD_BYTES);
    // Charged before the write, released for the version it replaced after.
    let reservation = match &state.ledger {
        Some(ledger) => Some(ledger.reserve(&owner, size).await?),
        None => None,
    };
    let written = state
        .shared
        .put(&owner, &id, old_rev.as_ref(), content, content_type)
        .await?;
    if let (Some(ledger), Some(reservation)) = (&state.ledger, reservation) {
        reservation.commit();
        let replaced_entry = if creating { 0 } else { ENTRY_OVERHEAD_BYTES };
        ledger.release(
            &owner,
            written.replaced_bytes.saturating_add(replaced_entry),
        );
    }
    let rev = written.rev;
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
    AuthenticatedUser(owner): AuthenticatedUser,
    Params(id): Params<String>,
    QueryArgs(arg): QueryArgs<RevArg>,
) -> Result<StatusCode, Error> {
    let id = SharedDocId::parse(&id)?;
    let current = lookup(&state, &owner, &id).await?;
    let Some(rev) = arg.old_rev.map(SharedRev::new) else {
        return Err(Error::RevisionConflict);
    };
    if rev != current.rev {
        return Err(Error::RevisionConflict);
    }
    if let Some(ledger) = &state.ledger {
        // Measured before the removal so it is not counted twice.
        ledger.ensure_loaded(&owner).await?;
    }
    let freed = state.shared.delete(&owner, &id, &rev).await?;
    if let Some(ledger) = &state.ledger {
        ledger.release(&owner, freed.saturating_add(ENTRY_OVERHEAD_BYTES));
    }
    Ok(StatusCode::NO_CONTENT)
}
