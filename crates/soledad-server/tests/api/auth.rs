//! The authentication/authorisation matrix over every route.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use soledad_server::TokenStore as _;

use crate::util::{Creds, TestServer, auth_header, service_header};

/// Every users-API route that names a user, for user `u`.
fn user_routes(u: &str) -> Vec<(Method, String, Option<&'static str>)> {
    vec![
        (Method::GET, format!("/blobs/{u}"), None),
        (Method::GET, format!("/blobs/{u}?only_count=true"), None),
        (Method::GET, format!("/blobs/{u}/b1"), None),
        (Method::GET, format!("/blobs/{u}/b1?only_flags=true"), None),
        (Method::PUT, format!("/blobs/{u}/b2"), Some("data")),
        (
            Method::POST,
            format!("/blobs/{u}/b1"),
            Some("[\"PENDING\"]"),
        ),
        (Method::DELETE, format!("/blobs/{u}/b1"), None),
        (Method::GET, format!("/usage/{u}"), None),
        (Method::GET, format!("/user-{u}/sync-from/replica1"), None),
        (
            Method::POST,
            format!("/user-{u}/sync-from/replica1"),
            Some("{}"),
        ),
        (
            Method::PUT,
            format!("/user-{u}/sync-from/replica1"),
            Some("{}"),
        ),
    ]
}

/// Routes any authenticated user may use (none names a user).
fn common_routes() -> Vec<(Method, String, Option<&'static str>)> {
    vec![
        (Method::GET, "/shared/doc/backup1".to_owned(), None),
        (Method::PUT, "/shared/doc/backup2".to_owned(), Some("x")),
        (
            Method::DELETE,
            "/shared/doc/backup1?old_rev=1-0".to_owned(),
            None,
        ),
    ]
}

async fn status(
    t: &TestServer,
    method: &Method,
    path: &str,
    body: Option<&'static str>,
    auth: Option<&str>,
) -> StatusCode {
    let mut request = t.client.request(method.clone(), t.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.unwrap().status()
}

async fn put_blob(t: &TestServer, who: &Creds, id: &str, body: &'static str) {
    let response = t
        .client
        .put(t.url(&format!("/blobs/{}/{id}", who.uuid)))
        .header("authorization", &who.header)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn anonymous_and_bad_credentials_get_401_everywhere() {
    let t = TestServer::start().await;
    let bad_headers = [
        None,
        Some(auth_header("alice", "not-her-token")),
        Some(auth_header("nobody", "whatever")),
        Some("Token !!!not-base64".to_owned()),
        Some("Basic YWxpY2U6eA==".to_owned()),
        Some(service_header()),
    ];
    let mut routes = user_routes("alice");
    routes.extend(common_routes());
    routes.push((Method::GET, "/nope".to_owned(), None));
    routes.push((Method::PUT, "/incoming/alice/x".to_owned(), Some("x")));
    for header in &bad_headers {
        for (method, path, body) in &routes {
            let got = status(&t, method, path, *body, header.as_deref()).await;
            assert_eq!(
                got,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {header:?}"
            );
        }
        // Bad credentials are refused even on the public routes' neighbours,
        // but anonymous users reach the public ones.
    }
    assert_eq!(
        status(&t, &Method::GET, "/", None, None).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&t, &Method::GET, "/robots.txt", None, None).await,
        StatusCode::OK
    );
    t.shutdown().await;
}

#[tokio::test]
async fn expired_removed_and_rotated_tokens() {
    let t = TestServer::start().await;
    let past = SystemTime::now() - Duration::from_secs(60);
    let expired = t.tokens.add("carol", Some(past)).await.unwrap();
    let carol = auth_header("carol", expired.expose());
    assert_eq!(
        status(&t, &Method::GET, "/blobs/carol", None, Some(&carol)).await,
        StatusCode::UNAUTHORIZED
    );
    let future = SystemTime::now() + Duration::from_secs(3600);
    let fresh = t.tokens.rotate("carol", Some(future)).await.unwrap();
    let carol_new = auth_header("carol", fresh.expose());
    assert_eq!(
        status(&t, &Method::GET, "/blobs/carol", None, Some(&carol_new)).await,
        StatusCode::OK
    );
    // Rotation: the old token stops working.
    let again = t.tokens.rotate("carol", None).await.unwrap();
    assert_eq!(
        status(&t, &Method::GET, "/blobs/carol", None, Some(&carol_new)).await,
        StatusCode::UNAUTHORIZED
    );
    let carol_again = auth_header("carol", again.expose());
    assert_eq!(
        status(&t, &Method::GET, "/blobs/carol", None, Some(&carol_again)).await,
        StatusCode::OK
    );
    // Removal: refused at once.
    t.tokens.remove("carol").await.unwrap();
    assert_eq!(
        status(&t, &Method::GET, "/blobs/carol", None, Some(&carol_again)).await,
        StatusCode::UNAUTHORIZED
    );
    t.shutdown().await;
}

#[tokio::test]
async fn user_a_gets_403_on_every_route_naming_user_b() {
    let t = TestServer::start().await;
    put_blob(&t, &t.bob, "b1", "bob's data").await;
    for (method, path, body) in user_routes(&t.bob.uuid) {
        let got = status(&t, &method, &path, body, Some(&t.alice.header)).await;
        assert_eq!(got, StatusCode::FORBIDDEN, "alice: {method} {path}");
    }
    // Bob's blob is untouched, and nothing was created for him.
    let response = t
        .client
        .get(t.url("/blobs/bob/b1"))
        .header("authorization", &t.bob.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "bob's data");
    let list: Vec<String> = t
        .client
        .get(t.url("/blobs/bob"))
        .header("authorization", &t.bob.header)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, vec!["b1".to_owned()]);
    t.shutdown().await;
}

/// Issue 8: spellings of Bob's owner segment that decode to him (or to no
/// valid user) are refused for Alice, and nothing is created for Bob.
#[tokio::test]
async fn encoded_owner_segments_never_reach_another_user() {
    let t = TestServer::start().await;
    for spelled in ["%62ob", "%62%6F%62", "b%6fb", "%2562ob", "BOB", "Bob"] {
        for (method, path, body) in user_routes(spelled) {
            let got = status(&t, &method, &path, body, Some(&t.alice.header)).await;
            assert_eq!(got, StatusCode::FORBIDDEN, "alice: {method} {path}");
        }
    }
    for db in ["user%2Dbob", "%75ser-bob", "us%65r-bob", "user-%62ob"] {
        for method in [Method::GET, Method::PUT, Method::POST] {
            let path = format!("/{db}/sync-from/replica1");
            let got = status(&t, &method, &path, Some("{}"), Some(&t.alice.header)).await;
            assert_eq!(got, StatusCode::FORBIDDEN, "alice: {method} {path}");
        }
    }
    for db in ["USER-bob", "User-bob", "%2575ser-bob", "bob"] {
        let path = format!("/{db}/sync-from/replica1");
        let got = status(&t, &Method::GET, &path, None, Some(&t.alice.header)).await;
        assert_eq!(got, StatusCode::NOT_FOUND, "alice: GET {path}");
    }
    let data = &t.config.data_path;
    assert!(!data.join("users").join("user-bob.db").exists());
    assert!(!t.config.blobs_dir().join("bob").exists());
    t.shutdown().await;
}

#[tokio::test]
async fn owner_passes_auth_on_every_own_route() {
    let t = TestServer::start().await;
    put_blob(&t, &t.alice, "b1", "alice's data").await;
    let mut routes = user_routes(&t.alice.uuid);
    routes.extend(common_routes());
    for (method, path, body) in routes {
        let got = status(&t, &method, &path, body, Some(&t.alice.header)).await;
        assert!(
            got != StatusCode::UNAUTHORIZED && got != StatusCode::FORBIDDEN,
            "alice: {method} {path} -> {got}"
        );
    }
    t.shutdown().await;
}

#[tokio::test]
async fn services_api_accepts_only_service_tokens() {
    let t = TestServer::start().await;
    let put = |auth: Option<String>| {
        let mut request = t
            .plain
            .put(t.services_url("/incoming/alice/m1"))
            .body("payload");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    assert_eq!(put(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        put(Some(t.alice.header.clone())).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        put(Some(auth_header("incoming", "wrong")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        put(Some(service_header())).await.unwrap().status(),
        StatusCode::OK
    );
    t.shutdown().await;
}

/// docs/security.md: the token store keeps only SHA-256 hashes of tokens, so a copy
/// of it (a backup, a stolen disk) does not let anyone act as a user.
#[tokio::test]
async fn the_token_store_keeps_hashes_never_tokens() {
    use sha2::{Digest as _, Sha256};
    use soledad_server::TokenStore as _;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.sqlite");
    let store = soledad_server::SqliteTokenStore::open(&path).unwrap();
    let token = store.add("carol", None).await.unwrap().expose().to_owned();
    assert!(store.verify("carol", &token).await.unwrap());

    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        on_disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| on_disk.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(token.as_bytes()), "the token itself is on disk");
    let db = rusqlite::Connection::open(&path).unwrap();
    let stored: Vec<u8> = db
        .query_row(
            "SELECT token_sha256 FROM user_tokens WHERE uuid = 'carol'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, Sha256::digest(token.as_bytes()).to_vec());
}
