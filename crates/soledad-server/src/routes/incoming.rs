//! The incoming box delivery route of the services API:
//! `PUT /incoming/{uuid}/{blob_id}` ([`Access::Service`]: any service delivers
//! to any user, named by the decoded, parsed `{uuid}`). The payload (already
//! encrypted by the delivering service) is stored in namespace `MX`, flagged `PENDING`, behind an
//! `external`-scheme blob preamble so clients hand it to their consumer
//! undecrypted.
//!
//! [`Access::Service`]: crate::auth::access::Access::Service

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
use crate::auth::access::ServiceCaller;
use crate::blobs::{BlobId, ByteStream, Flag, Namespace, UserId};
use crate::error::Error;
use soledad_crypto::Preamble;

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
    let user = UserId::parse(&uuid)?;
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
    Ok(Json(serde_json::json!({ "size": stored })).into_response())
}
