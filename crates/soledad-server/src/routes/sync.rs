//! The document sync routes (`docs/protocol.md`):
//!
//! * `GET /user-{uuid}/sync-from/{source}` → [`soledad_protocol::SyncInfo`];
//! * `PUT /user-{uuid}/sync-from/{source}` with [`soledad_protocol::RecordSyncInfo`];
//! * `POST /user-{uuid}/sync-from/{source}` → the streamed exchange.
//!
//! The route is `/{db}/sync-from/{source}` with [`Access::Owner`]: the
//! [`Owner`] extractor parses the decoded `{db}` strictly as `user-{uuid}`
//! (anything else is 404) and requires that user to be the caller (403), so
//! an encoded spelling (`user%2D…`, `%75ser-…`) reaches no other user's store.
//!
//! Each user has at most `max_sync_exchanges_per_user` exchanges in flight
//! (429 `too_many_requests` beyond).
//!
//! [`Access::Owner`]: crate::auth::access::Access::Owner

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use soledad_protocol::{RecordSyncInfo, SYNC_CONTENT_TYPE, SyncInfo};
use std::sync::Arc;

use super::AppState;
use super::extract::Params;
use crate::auth::access::Owner;
use crate::docsync;
use crate::error::Error;

/// Largest `PUT` body (a small JSON object).
const MAX_RECORD_BODY: usize = 4096;

/// The source replica a sync route names (the owner comes from [`Owner`]).
#[derive(serde::Deserialize)]
pub(crate) struct SyncPath {
    source: String,
}

/// `GET /user-{uuid}/sync-from/{source}`.
pub(crate) async fn get_sync_info(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params(SyncPath { source }): Params<SyncPath>,
) -> Result<Json<SyncInfo>, Error> {
    Ok(Json(
        docsync::sync_info(&*state.user_stores, &user, &source).await?,
    ))
}

/// `PUT /user-{uuid}/sync-from/{source}`.
pub(crate) async fn put_sync_info(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params(SyncPath { source }): Params<SyncPath>,
    body: Body,
) -> Result<StatusCode, Error> {
    let bytes = axum::body::to_bytes(body, MAX_RECORD_BODY)
        .await
        .map_err(|_| Error::InvalidRequest { what: "body" })?;
    let record: RecordSyncInfo =
        serde_json::from_slice(&bytes).map_err(|_| Error::InvalidRequest { what: "body" })?;
    docsync::record_sync_info(
        &*state.user_stores,
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
    Owner(user): Owner,
    Params(SyncPath { source }): Params<SyncPath>,
    body: Body,
) -> Result<Response, Error> {
    // Held until the response stream ends (or the client goes away).
    let slot = state.sync_slots.try_take(&user)?;
    let response = docsync::exchange(
        Arc::clone(&state.user_stores),
        state.ledger.clone(),
        &user,
        &source,
        body.into_data_stream(),
    )
    .await?;
    Ok((
        [(header::CONTENT_TYPE, SYNC_CONTENT_TYPE)],
        // No empty chunk: each would be an empty DATA frame, and HTTP/2 peers
        // (h2) close a connection after 100 of them.
        Body::from_stream(
            response
                .filter(|item| std::future::ready(!matches!(item, Ok(chunk) if chunk.is_empty())))
                .map(move |item| {
                    let _held = &slot;
                    item
                }),
        ),
    )
        .into_response())
}
