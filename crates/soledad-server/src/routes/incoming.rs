//! The incoming box routes.
//!
//! Services API ([`Access::Service`]: any service, for any *known* user named
//! by the decoded, parsed `{uuid}`; an unknown user is 404):
//!
//! | route | method | what |
//! |---|---|---|
//! | `/incoming/{uuid}/{blob_id}` | PUT | deliver a sealed message: stored in namespace `MX`, flagged `PENDING`, behind an `external` preamble, charged to the user's quota |
//! | `/incoming-key/{uuid}` | GET | the user's published incoming public key (text) |
//!
//! Users API ([`Access::Owner`]):
//!
//! | route | method | what | options |
//! |---|---|---|---|
//! | `/incoming/{uuid}` | GET | the box, oldest first: `{"messages": [{"id", "size", "state", "failed_version"?}], "pending", "skipped_oversized"}` | `limit`, `page`, `size_limit`, `include_processing`, `version` (unknown options: 400) |
//! | `/incoming/{uuid}/{blob_id}/claim` | POST | claim: `{"claim", "expires_in_secs"}`, 409 `message_claimed` if held | `version` (default 1) |
//! | `/incoming/{uuid}/{blob_id}/processed` | POST | body `{"claim"}`: delete the message (204) | |
//! | `/incoming/{uuid}/{blob_id}/failed` | POST | body `{"claim", "version"}`: flag `FAILED` at that version (204) | |
//! | `/incoming-key/{uuid}` | PUT / GET | publish (replace: rotation) / read one's incoming public key | |
//!
//! The message itself is downloaded with `GET /blobs/{uuid}/{blob_id}?namespace=MX`.
//!
//! [`Access::Service`]: crate::auth::access::Access::Service
//! [`Access::Owner`]: crate::auth::access::Access::Owner

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::AppState;
use super::blobs::{body_stream, content_length};
use super::extract::{Params, QueryArgs};
use crate::auth::access::{Owner, ServiceCaller};
use crate::blobs::{BlobId, ByteStream, Flag, Namespace, UserId};
use crate::error::Error;
use crate::incoming::{IncomingBox, IncomingQuery, MAX_PUBLIC_KEY_LEN, Outcome};
use crate::notify::ChangeKind;
use axum::http::StatusCode;
use serde::Deserialize;
use soledad_crypto::Preamble;

/// Longest body of the `processed`/`failed` routes.
const MAX_OUTCOME_BODY: usize = 1024;

fn incoming_box(state: &AppState) -> Result<&dyn IncomingBox, Error> {
    state.incoming.as_deref().ok_or(Error::NotFound)
}

/// A known user named by a services-API route (404 for anyone else).
async fn known_user(state: &AppState, uuid: &str) -> Result<UserId, Error> {
    let user = UserId::parse(uuid)?;
    if !state.tokens.contains(user.as_str()).await? {
        return Err(Error::NotFound);
    }
    Ok(user)
}

/// `PUT /incoming/{uuid}/{blob_id}` (services API, service token required).
pub(crate) async fn deliver(
    State(state): State<AppState>,
    ServiceCaller(service): ServiceCaller,
    Params((uuid, blob_id)): Params<(String, String)>,
    QueryArgs(_args): QueryArgs<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let backend = state.blobs.as_deref().ok_or(Error::NotFound)?;
    let user = known_user(&state, &uuid).await?;
    let id = BlobId::parse(&blob_id)?;
    // The preamble records the delivered size, so the length must be known.
    let length = content_length(&headers)?.ok_or(Error::InvalidRequest {
        what: "content-length required",
    })?;
    let preamble = Preamble::external(id.as_str(), length)
        .map_err(|_| Error::InvalidRequest { what: "blob id" })?
        .to_bytes();
    let total = u64::try_from(preamble.len())
        .ok()
        .and_then(|prefix| length.checked_add(prefix));
    let prefix =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(preamble)) });
    let stream: ByteStream = Box::pin(prefix.chain(body_stream(body)));
    let stored = backend
        .put(
            &user,
            &Namespace::incoming(),
            &id,
            stream,
            total,
            &[Flag::Pending],
        )
        .await?;
    tracing::info!(service = %service, bytes = stored, "incoming blob delivered");
    state
        .notifier
        .notify(&user, ChangeKind::Incoming, None)
        .await;
    Ok(Json(serde_json::json!({ "size": stored })).into_response())
}

/// Options of the listing; any other is refused (400).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListArgs {
    limit: Option<usize>,
    page: Option<usize>,
    size_limit: Option<u64>,
    include_processing: Option<bool>,
    version: Option<u64>,
}

/// `GET /incoming/{uuid}` (users API, owner).
pub(crate) async fn list(
    State(state): State<AppState>,
    Owner(user): Owner,
    QueryArgs(args): QueryArgs<ListArgs>,
) -> Result<Response, Error> {
    if args.limit == Some(0) {
        return Err(Error::InvalidRequest { what: "limit" });
    }
    let query = IncomingQuery {
        limit: args.limit,
        page: args.page.unwrap_or(0),
        size_limit: args.size_limit,
        include_processing: args.include_processing.unwrap_or(false),
        version: args.version,
    };
    let listing = incoming_box(&state)?.list(&user, &query).await?;
    Ok(Json(listing).into_response())
}

/// Options of a claim.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimArgs {
    version: Option<u64>,
}

/// `POST /incoming/{uuid}/{blob_id}/claim` (users API, owner).
pub(crate) async fn claim(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params((_uuid, blob_id)): Params<(String, String)>,
    QueryArgs(args): QueryArgs<ClaimArgs>,
) -> Result<Response, Error> {
    let id = BlobId::parse(&blob_id)?;
    let claim = incoming_box(&state)?
        .claim(&user, &id, args.version.unwrap_or(1))
        .await?;
    state
        .notifier
        .notify(&user, ChangeKind::Incoming, None)
        .await;
    tracing::debug!("incoming message claimed");
    Ok(Json(claim).into_response())
}

/// Body of `processed` and `failed`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    claim: String,
    version: Option<u64>,
}

async fn outcome_body(body: Body) -> Result<OutcomeBody, Error> {
    let bytes = axum::body::to_bytes(body, MAX_OUTCOME_BODY)
        .await
        .map_err(|_| Error::InvalidRequest { what: "body" })?;
    serde_json::from_slice(&bytes).map_err(|_| Error::InvalidRequest { what: "body" })
}

/// `POST /incoming/{uuid}/{blob_id}/processed` (users API, owner).
pub(crate) async fn processed(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params((_uuid, blob_id)): Params<(String, String)>,
    body: Body,
) -> Result<Response, Error> {
    let id = BlobId::parse(&blob_id)?;
    let body = outcome_body(body).await?;
    incoming_box(&state)?
        .finish(&user, &id, &body.claim, Outcome::Processed)
        .await?;
    state
        .notifier
        .notify(&user, ChangeKind::Incoming, None)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /incoming/{uuid}/{blob_id}/failed` (users API, owner).
pub(crate) async fn failed(
    State(state): State<AppState>,
    Owner(user): Owner,
    Params((_uuid, blob_id)): Params<(String, String)>,
    body: Body,
) -> Result<Response, Error> {
    let id = BlobId::parse(&blob_id)?;
    let body = outcome_body(body).await?;
    let version = body
        .version
        .ok_or(Error::InvalidRequest { what: "version" })?;
    incoming_box(&state)?
        .finish(&user, &id, &body.claim, Outcome::Failed { version })
        .await?;
    state
        .notifier
        .notify(&user, ChangeKind::Incoming, None)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /incoming-key/{uuid}` (users API, owner): publish or rotate.
pub(crate) async fn publish_key(
    State(state): State<AppState>,
    Owner(user): Owner,
    body: Body,
) -> Result<Response, Error> {
    let bytes = axum::body::to_bytes(body, MAX_PUBLIC_KEY_LEN)
        .await
        .map_err(|_| Error::InvalidRequest { what: "key" })?;
    let key = std::str::from_utf8(&bytes).map_err(|_| Error::InvalidRequest { what: "key" })?;
    incoming_box(&state)?
        .set_public_key(&user, key.trim())
        .await?;
    tracing::info!("incoming public key published");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /incoming-key/{uuid}` (users API, owner).
pub(crate) async fn own_key(
    State(state): State<AppState>,
    Owner(user): Owner,
) -> Result<Response, Error> {
    Ok(incoming_box(&state)?
        .public_key(&user)
        .await?
        .into_response())
}

/// `GET /incoming-key/{uuid}` (services API): the key a deliverer seals to.
pub(crate) async fn service_key(
    State(state): State<AppState>,
    ServiceCaller(_service): ServiceCaller,
    Params(uuid): Params<String>,
) -> Result<Response, Error> {
    let user = known_user(&state, &uuid).await?;
    Ok(incoming_box(&state)?
        .public_key(&user)
        .await?
        .into_response())
}
