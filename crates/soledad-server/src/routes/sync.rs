//! The document sync routes (`docs/protocol.md`):
//!
//! * `GET /user-{uuid}/sync-from/{source}` → [`soledad_protocol::SyncInfo`];
//! * `PUT /user-{uuid}/sync-from/{source}` with [`soledad_protocol::RecordSyncInfo`];
//! * `POST /user-{uuid}/sync-from/{source}` → the streamed exchange.
//!
//! The authentication middleware has already checked that `{uuid}` is the caller.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use soledad_protocol::{RecordSyncInfo, SYNC_CONTENT_TYPE, SyncInfo};

use super::AppState;
use super::extract::Params;
use crate::blobs::UserId;
use crate::docsync;
use crate::error::Error;

/// Largest `PUT` body (a small JSON object).
const MAX_RECORD_BODY: usize = 4096;

fn user_of(segment: &str) -> Result<UserId, Error> {
    let uuid = segment.strip_prefix("user-").ok_or(Error::NotFound)?;
    UserId::parse(uuid).map_err(|_| Error::InvalidUserId)
}

/// `GET /user-{uuid}/sync-from/{source}`.
pub(crate) async fn get_sync_info(
    State(state): State<AppState>,
    Params((db, source)): Params<(String, String)>,
) -> Result<Json<SyncInfo>, Error> {
    let user = user_of(&db)?;
    Ok(Json(
        docsync::sync_info(&state.user_stores, &user, &source).await?,
    ))
}

/// `PUT /user-{uuid}/sync-from/{source}`.
pub(crate) async fn put_sync_info(
    State(state): State<AppState>,
    Params((db, source)): Params<(String, String)>,
    body: Body,
) -> Result<StatusCode, Error> {
    let user = user_of(&db)?;
    let bytes = axum::body::to_bytes(body, MAX_RECORD_BODY)
        .await
        .map_err(|_| Error::InvalidRequest { what: "body" })?;
    let record: RecordSyncInfo =
        serde_json::from_slice(&bytes).map_err(|_| Error::InvalidRequest { what: "body" })?;
    docsync::record_sync_info(
        &state.user_stores,
        state.ledger.clone(),
        &user,
        &source,
        record,
    )
    .await?;
    Ok(StatusCode::OK)
}

/// `POST /user-{uuid}/sync-from/{source}`.
pub(crate) async fn post_exchange(
    State(state): State<AppState>,
    Params((db, source)): Params<(String, String)>,
    body: Body,
) -> Result<Response, Error> {
    let user = user_of(&db)?;
    let response = docsync::exchange(
        &state.user_stores,
        state.ledger.clone(),
        &user,
        &source,
        body.into_data_stream(),
    )
    .await?;
    Ok((
        [(header::CONTENT_TYPE, SYNC_CONTENT_TYPE)],
        Body::from_stream(response),
    )
        .into_response())
}
