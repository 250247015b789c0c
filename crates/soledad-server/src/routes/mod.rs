//! The two HTTP APIs as axum routers: the users API (TLS) and the services API
//! (loopback). Every route goes through the authentication middleware
//! ([`crate::auth`]) and a tracing span named by its route template, and is
//! registered with its access rule ([`Access`]) through [`Routes::add`], the
//! only way to add one: a route without a rule cannot exist.

pub(crate) mod blobs;
mod changes;
mod extract;
mod incoming;
mod info;
mod shared;
mod sync;

#[cfg(test)]
mod access_tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware;
use axum::routing::{MethodRouter, get, post, put};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::access::{Access, enforce};
use crate::auth::{Api, Authenticator, ServiceTokens, TokenStore};
use crate::blobs::{BlobBackend, QuotaLedger};
use crate::error::Error;
use crate::incoming::IncomingBox;
use crate::limits::{MissLimiter, UserSlots};
use crate::notify::{ChangeNotifier, WaitSlots};
use crate::shared::SharedStore;
use crate::userdb::UserDocStores;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) shared: Arc<dyn SharedStore>,
    pub(crate) blobs: Option<Arc<dyn BlobBackend>>,
    pub(crate) batching: bool,
    pub(crate) quota_bytes: u64,
    pub(crate) shared_doc_max_bytes: u64,
    /// Per-user document stores for the sync routes.
    pub(crate) user_stores: Arc<dyn UserDocStores>,
    /// The quota every write path of a user charges (blobs, incoming, sync,
    /// shared documents).
    pub(crate) ledger: Option<Arc<QuotaLedger>>,
    /// Sync exchanges in flight per user (`max_sync_exchanges_per_user`).
    pub(crate) sync_slots: Arc<UserSlots>,
    /// Misses on the shared store per user (`shared_misses_per_minute`).
    pub(crate) shared_misses: Arc<MissLimiter>,
    /// Longest pause inside a request body (`body_timeout_secs`).
    pub(crate) body_timeout: Duration,
    /// Claims and keys of the incoming box (with blobs only).
    pub(crate) incoming: Option<Arc<dyn IncomingBox>>,
    /// The known users (an incoming delivery to anyone else is refused).
    pub(crate) tokens: Arc<dyn TokenStore>,
    /// Where writes are announced and change requests wait.
    pub(crate) notifier: Arc<dyn ChangeNotifier>,
    /// Change requests waiting, per user and in all.
    pub(crate) live_waits: Arc<WaitSlots>,
    /// Longest wait of a change request (`live_wait_secs`).
    pub(crate) live_wait: Duration,
    /// Cancelled when the server starts shutting down: waits end at once.
    pub(crate) stopping: CancellationToken,
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

/// Adds the fallbacks, the authentication middleware, the body timeout (a
/// body pausing longer fails with an error its handler maps to 400 and
/// releases what it held) and the request span.
fn finish(
    router: Router<AppState>,
    state: AppState,
    auth: Authenticator,
    api: &'static str,
) -> Router {
    let body_timeout = RequestBodyTimeoutLayer::new(state.body_timeout);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            auth,
            crate::auth::authenticate,
        ))
        .layer(body_timeout)
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

/// A route template and its access rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteRule {
    /// The route template, as registered.
    pub(crate) path: &'static str,
    /// Who may use it.
    pub(crate) access: Access,
}

/// A router under construction, with the rule of every route added so far.
pub(crate) struct Routes {
    router: Router<AppState>,
    rules: Vec<RouteRule>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            rules: Vec::new(),
        }
    }

    /// Adds `methods` at `path`, guarded by `access` (enforced after routing,
    /// on the decoded parameters, before any handler runs).
    fn add(mut self, path: &'static str, access: Access, methods: MethodRouter<AppState>) -> Self {
        let methods = methods.route_layer(middleware::from_fn_with_state(access, enforce));
        self.router = self.router.route(path, methods);
        self.rules.push(RouteRule { path, access });
        self
    }

    /// The rule of every route, in registration order.
    pub(crate) fn rules(&self) -> &[RouteRule] {
        &self.rules
    }
}

fn log_rules(routes: &Routes, api: &'static str) {
    for rule in routes.rules() {
        tracing::debug!(api, route = rule.path, access = ?rule.access, "route registered");
    }
}

/// The users API's routes: server info, shared store, sync and blobs.
pub(crate) fn users_routes(state: &AppState) -> Routes {
    let mut routes = Routes::new()
        .add("/", Access::Public, get(info::server_info))
        .add("/robots.txt", Access::Public, get(info::robots))
        .add(
            "/shared/doc/{id}",
            Access::AuthenticatedUser,
            get(shared::get_doc)
                .put(shared::put_doc)
                .delete(shared::delete_doc),
        )
        .add(
            "/{db}/sync-from/{source}",
            Access::Owner,
            get(sync::get_sync_info)
                .put(sync::put_sync_info)
                .post(sync::post_exchange),
        )
        .add("/changes/{uuid}", Access::Owner, get(changes::wait));
    if state.blobs.is_some() {
        routes = routes
            .add("/blobs/{uuid}", Access::Owner, get(blobs::list))
            .add(
                "/blobs/{uuid}/{blob_id}",
                Access::Owner,
                get(blobs::get_blob)
                    .put(blobs::put_blob)
                    .post(blobs::set_flags)
                    .delete(blobs::delete_blob),
            )
            .add("/usage/{uuid}", Access::Owner, get(blobs::usage))
            .add("/incoming/{uuid}", Access::Owner, get(incoming::list))
            .add(
                "/incoming/{uuid}/{blob_id}/claim",
                Access::Owner,
                post(incoming::claim),
            )
            .add(
                "/incoming/{uuid}/{blob_id}/processed",
                Access::Owner,
                post(incoming::processed),
            )
            .add(
                "/incoming/{uuid}/{blob_id}/failed",
                Access::Owner,
                post(incoming::failed),
            )
            .add(
                "/incoming-key/{uuid}",
                Access::Owner,
                get(incoming::own_key).put(incoming::publish_key),
            );
    }
    routes
}

/// The users API: server info, shared store, sync and blobs.
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
    let routes = users_routes(&state);
    log_rules(&routes, "users");
    finish(routes.router, state, auth, "users")
}

/// The services API's routes: server info and incoming delivery.
pub(crate) fn services_routes(state: &AppState) -> Routes {
    let mut routes = Routes::new()
        .add("/", Access::Public, get(info::server_info))
        .add("/robots.txt", Access::Public, get(info::robots));
    if state.blobs.is_some() {
        routes = routes
            .add(
                "/incoming/{uuid}/{blob_id}",
                Access::Service,
                put(incoming::deliver),
            )
            .add(
                "/incoming-key/{uuid}",
                Access::Service,
                get(incoming::service_key),
            );
    }
    routes
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
    let routes = services_routes(&state);
    log_rules(&routes, "services");
    finish(routes.router, state, auth, "services")
}
