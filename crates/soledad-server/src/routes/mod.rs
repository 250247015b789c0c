//! The two HTTP APIs as axum routers: the users API (TLS) and the services API
//! (loopback). Every route goes through the authentication middleware
//! ([`crate::auth`]) and a tracing span named by its route template.

pub(crate) mod blobs;
mod extract;
mod incoming;
mod info;
mod shared;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware;
use axum::routing::{get, put};
use tower_http::trace::TraceLayer;

use crate::auth::{Api, Authenticator, ServiceTokens, TokenStore};
use crate::blobs::{BlobBackend, QuotaLedger};
use crate::docsync::UserStores;
use crate::error::Error;
use crate::shared::SharedStore;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) shared: Arc<dyn SharedStore>,
    pub(crate) blobs: Option<Arc<dyn BlobBackend>>,
    pub(crate) batching: bool,
    pub(crate) quota_bytes: u64,
    pub(crate) shared_doc_max_bytes: u64,
    /// Per-user document stores for the sync routes.
    pub(crate) user_stores: Arc<UserStores>,
    /// The quota every write path of a user charges (blobs, incoming, sync).
    pub(crate) ledger: Option<Arc<QuotaLedger>>,
}

/// JSON 404 for unknown routes.
async fn not_found() -> Error {
    Error::NotFound
}

/// JSON 405 for known routes with another method.
async fn method_not_allowed() -> (
    axum::http::StatusCode,
    axum::Json<soledad_protocol::ErrorBody>,
) {
    let kind = soledad_protocol::ErrorKind::MethodNotAllowed;
    (
        axum::http::StatusCode::from_u16(kind.status())
            .unwrap_or(axum::http::StatusCode::METHOD_NOT_ALLOWED),
        axum::Json(soledad_protocol::ErrorBody::new(
            kind,
            "method not allowed on this route",
        )),
    )
}

/// Adds the fallbacks, the authentication middleware and the request span.
fn finish(
    router: Router<AppState>,
    state: AppState,
    auth: Authenticator,
    api: &'static str,
) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            auth,
            crate::auth::authenticate,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(move |request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::debug_span!("request", api, method = %request.method(), route)
            }),
        )
        .with_state(state)
}

/// The users API: server info, shared store, blobs (and later sync).
pub(crate) fn users_router(
    state: AppState,
    tokens: Arc<dyn TokenStore>,
    services: Arc<ServiceTokens>,
) -> Router {
    let auth = Authenticator {
        api: Api::Users,
        tokens,
        services,
    };
    let mut router = Router::new()
        .route("/", get(info::server_info))
        .route("/robots.txt", get(info::robots))
        .route(
            "/shared/doc/{id}",
            get(shared::get_doc)
                .put(shared::put_doc)
                .delete(shared::delete_doc),
        )
        .route(
            "/{db}/sync-from/{source}",
            get(sync::get_sync_info)
                .put(sync::put_sync_info)
                .post(sync::post_exchange),
        );
    if state.blobs.is_some() {
        router = router
            .route("/blobs/{uuid}", get(blobs::list))
            .route(
                "/blobs/{uuid}/{blob_id}",
                get(blobs::get_blob)
                    .put(blobs::put_blob)
                    .post(blobs::set_flags)
                    .delete(blobs::delete_blob),
            )
            .route("/usage/{uuid}", get(blobs::usage));
    }
    finish(router, state, auth, "users")
}

/// The services API: server info and incoming delivery.
pub(crate) fn services_router(
    state: AppState,
    tokens: Arc<dyn TokenStore>,
    services: Arc<ServiceTokens>,
) -> Router {
    let auth = Authenticator {
        api: Api::Services,
        tokens,
        services,
    };
    let mut router = Router::new()
        .route("/", get(info::server_info))
        .route("/robots.txt", get(info::robots));
    if state.blobs.is_some() {
        router = router.route("/incoming/{uuid}/{blob_id}", put(incoming::deliver));
    }
    finish(router, state, auth, "services")
}
