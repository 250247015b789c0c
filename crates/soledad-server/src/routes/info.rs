//! Anonymous routes: `GET /` (server information) and `GET /robots.txt`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// `GET /`: `{"version", "blobs", "batching", "quota_bytes"}`.
pub(crate) async fn server_info(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({
        "name": "soledad-server",
        "version": env!("CARGO_PKG_VERSION"),
        "blobs": state.blobs.is_some(),
        "batching": state.batching,
        "quota_bytes": state.quota_bytes,
    }))
}

/// `GET /robots.txt`: disallow everything.
pub(crate) async fn robots() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "User-agent: *\nDisallow: /\n",
    )
}
