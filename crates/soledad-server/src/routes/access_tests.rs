//! The access matrix of every route, through the real routers and `oneshot`
//! (no sockets): the route table is explicit, and encoded, double-encoded,
//! case-changed and dot-segment spellings of every owner segment reach exactly
//! the user they decode to — the caller's own data, or nothing (403/404),
//! never another user's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use tower::ServiceExt as _;

use super::{AppState, RouteRule, services_routes, users_router, users_routes};
use crate::auth::access::Access;
use crate::auth::{ServiceTokens, SqliteTokenStore, TokenStore as _};
use crate::blobs::{FsBlobConfig, FsBlobStore};
use crate::docsync::{DocStoreUsage, UserStores};
use crate::incoming::EmbeddedIncomingBox;
use crate::limits::{MissLimiter, UserSlots};
use crate::shared::SqliteSharedStore;
use crate::userdb::EmbeddedUserDocStores;

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    router: Router,
    alice: String,
    bob: String,
}

fn state(data: &std::path::Path) -> AppState {
    let blobs = FsBlobStore::open(FsBlobConfig {
        root: data.join("blobs"),
        concurrent_blob_writes: 4,
        per_user_blob_writes: 1,
        quota_bytes: u64::MAX,
        deleted_retention: crate::config::DEFAULT_DELETED_BLOB_RETENTION,
    })
    .unwrap();
    let ledger = blobs.ledger();
    let blobs: Arc<dyn crate::blobs::BlobBackend> = Arc::new(blobs);
    let user_dbs = EmbeddedUserDocStores::new(data.join("users"));
    ledger.register_source(Arc::new(DocStoreUsage(user_dbs.clone())));
    let shared = SqliteSharedStore::open(&data.join("shared.sqlite")).unwrap();
    ledger.register_source(shared.usage_source());
    AppState {
        shared: Arc::new(shared),
        blobs: Some(Arc::clone(&blobs)),
        batching: true,
        quota_bytes: u64::MAX,
        shared_doc_max_bytes: 1024,
        user_stores: Arc::new(UserStores::new(user_dbs.clone())),
        ledger: Some(ledger),
        sync_slots: Arc::new(UserSlots::new(4)),
        shared_misses: Arc::new(MissLimiter::new(0)),
        body_timeout: Duration::from_secs(5),
        incoming: Some(Arc::new(
            EmbeddedIncomingBox::open(
                Arc::clone(&blobs),
                Duration::from_secs(60),
                &data.join("incoming.sqlite"),
            )
            .unwrap(),
        )),
        tokens: Arc::new(SqliteTokenStore::open(&data.join("tokens.sqlite")).unwrap()),
        notifier: Arc::new(crate::notify::InProcessNotifier::new()),
        live_waits: Arc::new(crate::notify::WaitSlots::new(4, 16)),
        live_wait: Duration::from_secs(5),
        stopping: tokio_util::sync::CancellationToken::new(),
    }
}

fn header(uuid: &str, token: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{uuid}:{token}")))
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tokens = Arc::new(SqliteTokenStore::open(&data.join("tokens.sqlite")).unwrap());
    let alice = tokens.add("alice", None).await.unwrap();
    let bob = tokens.add("bob", None).await.unwrap();
    let services = Arc::new(ServiceTokens::parse("incoming:svc-token\n").unwrap());
    let router = users_router(state(&data), tokens, services);
    Fixture {
        alice: header("alice", alice.expose()),
        bob: header("bob", bob.expose()),
        _dir: dir,
        data,
        router,
    }
}

#[test]
fn every_route_is_registered_with_an_explicit_rule() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let rule = |path, access| RouteRule { path, access };
    assert_eq!(
        users_routes(&state).rules(),
        [
            rule("/", Access::Public),
            rule("/robots.txt", Access::Public),
            rule("/shared/doc/{id}", Access::AuthenticatedUser),
            rule("/{db}/sync-from/{source}", Access::Owner),
            rule("/changes/{uuid}", Access::Owner),
            rule("/blobs/{uuid}", Access::Owner),
            rule("/blobs/{uuid}/{blob_id}", Access::Owner),
            rule("/usage/{uuid}", Access::Owner),
            rule("/incoming/{uuid}", Access::Owner),
            rule("/incoming/{uuid}/{blob_id}/claim", Access::Owner),
            rule("/incoming/{uuid}/{blob_id}/processed", Access::Owner),
            rule("/incoming/{uuid}/{blob_id}/failed", Access::Owner),
            rule("/incoming-key/{uuid}", Access::Owner),
        ]
    );
    assert_eq!(
        services_routes(&state).rules(),
        [
            rule("/", Access::Public),
            rule("/robots.txt", Access::Public),
            rule("/incoming/{uuid}/{blob_id}", Access::Service),
            rule("/incoming-key/{uuid}", Access::Service),
        ]
    );
    // Every owner route names its owner through a parameter the extractor reads.
    for r in users_routes(&state).rules() {
        if r.access == Access::Owner {
            assert!(
                r.path.contains("{uuid}") || r.path.starts_with("/{db}/"),
                "{}",
                r.path
            );
        }
    }
}

/// A route naming a user: method, path before and after the owner segment,
/// the owner segment for a user, a body.
#[derive(Debug, Clone, Copy)]
struct OwnerRoute {
    method: &'static str,
    before: &'static str,
    segment_prefix: &'static str,
    after: &'static str,
    body: &'static str,
}

const OWNER_ROUTES: [OwnerRoute; 15] = [
    // No `since`: answered at once, never waits.
    OwnerRoute {
        method: "GET",
        before: "/changes/",
        segment_prefix: "",
        after: "",
        body: "",
    },
    OwnerRoute {
        method: "GET",
        before: "/incoming/",
        segment_prefix: "",
        after: "",
        body: "",
    },
    OwnerRoute {
        method: "POST",
        before: "/incoming/",
        segment_prefix: "",
        after: "/m1/claim",
        body: "",
    },
    OwnerRoute {
        method: "POST",
        before: "/incoming/",
        segment_prefix: "",
        after: "/m1/processed",
        body: "{\"claim\": \"x\"}",
    },
    OwnerRoute {
        method: "POST",
        before: "/incoming/",
        segment_prefix: "",
        after: "/m1/failed",
        body: "{\"claim\": \"x\", \"version\": 1}",
    },
    OwnerRoute {
        method: "PUT",
        before: "/incoming-key/",
        segment_prefix: "",
        after: "",
        body: "age1key",
    },
    OwnerRoute {
        method: "GET",
        before: "/blobs/",
        segment_prefix: "",
        after: "",
        body: "",
    },
    OwnerRoute {
        method: "GET",
        before: "/blobs/",
        segment_prefix: "",
        after: "/b1",
        body: "",
    },
    OwnerRoute {
        method: "PUT",
        before: "/blobs/",
        segment_prefix: "",
        after: "/b2",
        body: "data",
    },
    OwnerRoute {
        method: "POST",
        before: "/blobs/",
        segment_prefix: "",
        after: "/b1",
        body: "[\"PENDING\"]",
    },
    OwnerRoute {
        method: "DELETE",
        before: "/blobs/",
        segment_prefix: "",
        after: "/b1",
        body: "",
    },
    OwnerRoute {
        method: "GET",
        before: "/usage/",
        segment_prefix: "",
        after: "",
        body: "",
    },
    OwnerRoute {
        method: "GET",
        before: "/",
        segment_prefix: "user-",
        after: "/sync-from/r1",
        body: "",
    },
    OwnerRoute {
        method: "PUT",
        before: "/",
        segment_prefix: "user-",
        after: "/sync-from/r1",
        body: "{\"generation\": 1, \"transaction_id\": \"T-1\"}",
    },
    OwnerRoute {
        method: "POST",
        before: "/",
        segment_prefix: "user-",
        after: "/sync-from/r1",
        body: "{}",
    },
];

/// How a segment is spelled.
#[derive(Debug, Clone)]
enum Spelling {
    /// Each byte percent-encoded or not, upper or lower hex.
    Encoded(Vec<(bool, bool)>),
    /// Encoded, then every `%` encoded again (`%25`).
    DoubleEncoded(Vec<(bool, bool)>),
    /// Letters with their case flipped where `true`.
    Cased(Vec<bool>),
}

/// A structural change of the whole path.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Plain,
    DotPrefix,
    DotDotPrefix,
    DotBeforeSegment,
    TrailingSlash,
    DoubleSlash,
}

fn encode(segment: &str, mask: &[(bool, bool)]) -> String {
    let mut out = String::new();
    for (i, byte) in segment.bytes().enumerate() {
        match mask.get(i) {
            Some((true, upper)) => {
                let hex = format!("{byte:02x}");
                out.push('%');
                out.push_str(&if *upper { hex.to_uppercase() } else { hex });
            }
            _ => out.push(char::from(byte)),
        }
    }
    out
}

fn spell(segment: &str, spelling: &Spelling) -> String {
    match spelling {
        Spelling::Encoded(mask) => encode(segment, mask),
        Spelling::DoubleEncoded(mask) => encode(segment, mask).replace('%', "%25"),
        Spelling::Cased(flips) => segment
            .chars()
            .enumerate()
            .map(|(i, c)| match flips.get(i) {
                Some(true) if c.is_ascii_lowercase() => c.to_ascii_uppercase(),
                Some(true) => c.to_ascii_lowercase(),
                _ => c,
            })
            .collect(),
    }
}

/// The segment as axum decodes it (percent-decoding once).
fn decode_once(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

fn path_of(route: &OwnerRoute, spelled: &str, shape: Shape) -> String {
    let plain = format!("{}{spelled}{}", route.before, route.after);
    match shape {
        Shape::Plain => plain,
        Shape::DotPrefix => format!("/.{plain}"),
        Shape::DotDotPrefix => format!("/blobs/..{plain}"),
        Shape::DotBeforeSegment => format!("{}./{spelled}{}", route.before, route.after),
        Shape::TrailingSlash => format!("{plain}/"),
        Shape::DoubleSlash => format!("{}/{spelled}{}", route.before, route.after),
    }
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let kind = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_default();
    (status, kind)
}

/// Refused by routing or authorization, not by a handler.
fn refused(status: StatusCode, kind: &str) -> bool {
    (status == StatusCode::FORBIDDEN && kind == "forbidden")
        || (status == StatusCode::NOT_FOUND && kind == "not_found")
}

fn spelling() -> impl Strategy<Value = Spelling> {
    let mask = proptest::collection::vec((any::<bool>(), any::<bool>()), 0..12);
    prop_oneof![
        mask.clone().prop_map(Spelling::Encoded),
        mask.prop_map(Spelling::DoubleEncoded),
        proptest::collection::vec(any::<bool>(), 0..12).prop_map(Spelling::Cased),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        6 => Just(Shape::Plain),
        1 => Just(Shape::DotPrefix),
        1 => Just(Shape::DotDotPrefix),
        1 => Just(Shape::DotBeforeSegment),
        1 => Just(Shape::TrailingSlash),
        1 => Just(Shape::DoubleSlash),
    ]
}

#[test]
fn encoded_spellings_of_every_owner_route_follow_the_access_matrix() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = runtime.block_on(fixture());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (0..OWNER_ROUTES.len(), spelling(), shape(), any::<bool>());
    runner
        .run(&strategy, |(index, spelling, shape, target_is_bob)| {
            let route = OWNER_ROUTES[index];
            let target = if target_is_bob { "bob" } else { "alice" };
            let segment = format!("{}{target}", route.segment_prefix);
            let spelled = spell(&segment, &spelling);
            let path = path_of(&route, &spelled, shape);
            runtime.block_on(async {
                // Anonymous: 401 whatever the spelling.
                let (status, _) = call(&f.router, route.method, &path, route.body, None).await;
                prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous {}", path);
                // Alice: her own data only.
                let (status, kind) =
                    call(&f.router, route.method, &path, route.body, Some(&f.alice)).await;
                let own = matches!(shape, Shape::Plain)
                    && decode_once(&spelled) == format!("{}alice", route.segment_prefix);
                if own {
                    prop_assert!(
                        !refused(status, &kind) && status != StatusCode::UNAUTHORIZED,
                        "alice {} {} -> {} {}",
                        route.method,
                        path,
                        status,
                        kind
                    );
                } else {
                    prop_assert!(
                        refused(status, &kind),
                        "alice {} {} -> {} {}",
                        route.method,
                        path,
                        status,
                        kind
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    // Nothing of Bob's was created or recorded: no document store (so no sync
    // position), no blob directory.
    assert!(!f.data.join("users").join("user-bob.db").exists());
    assert!(!f.data.join("blobs").join("bob").exists());
    // Bob himself still reaches his routes.
    let (status, kind) = runtime.block_on(call(&f.router, "GET", "/blobs/bob", "", Some(&f.bob)));
    assert_eq!((status, kind.as_str()), (StatusCode::OK, ""));
}

#[test]
fn shared_routes_need_a_user_and_scope_documents_to_the_caller() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let f = fixture().await;
        assert_eq!(
            call(&f.router, "GET", "/shared/doc/x", "", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&f.router, "PUT", "/shared/doc/x", "alice's", Some(&f.alice))
                .await
                .0,
            StatusCode::CREATED
        );
        for method in ["GET", "DELETE"] {
            let (status, kind) = call(
                &f.router,
                method,
                "/shared/doc/x?old_rev=1-0",
                "",
                Some(&f.bob),
            )
            .await;
            assert_eq!(
                (status, kind.as_str()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{method}"
            );
        }
        for spelled in ["%78", "%2578", "X", "./x", "x/"] {
            let (status, _) = call(
                &f.router,
                "GET",
                &format!("/shared/doc/{spelled}"),
                "",
                Some(&f.bob),
            )
            .await;
            assert!(
                status.is_client_error() && status != StatusCode::OK,
                "{spelled}"
            );
        }
        assert_eq!(
            call(&f.router, "GET", "/shared/doc/x", "", Some(&f.alice))
                .await
                .0,
            StatusCode::OK
        );
    });
}

#[test]
fn implicit_head_and_other_methods_are_guarded_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let f = fixture().await;
        for path in [
            "/blobs/bob",
            "/blobs/bob/b1",
            "/usage/bob",
            "/user-bob/sync-from/r1",
            "/changes/bob",
        ] {
            let (status, _) = call(&f.router, "HEAD", path, "", Some(&f.alice)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "HEAD {path}");
            let (status, _) = call(&f.router, "PATCH", path, "", Some(&f.alice)).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "PATCH {path}");
            let (status, _) = call(&f.router, "PATCH", path, "", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous PATCH {path}");
        }
    });
}
