//! Anonymous routes, TLS and protocol versions.

use reqwest::StatusCode;

use crate::util::{TestServer, client_for};

#[tokio::test]
async fn anonymous_info_and_robots() {
    let t = TestServer::start().await;
    let response = t.client.get(t.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info: serde_json::Value = response.json().await.unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["blobs"], true);

    let response = t.client.get(t.url("/robots.txt")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "User-agent: *\nDisallow: /\n"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn blobs_flag_is_reported_and_routes_vanish_when_disabled() {
    let t = TestServer::start_with(|c| c.blobs = false).await;
    let info: serde_json::Value = t
        .client
        .get(t.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["blobs"], false);
    let response = t
        .client
        .get(t.url("/blobs/alice"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    t.shutdown().await;
}

#[tokio::test]
async fn serves_http2_and_http1_over_tls_with_generated_cert() {
    let t = TestServer::start().await;
    let cert = t.cert_path().to_path_buf();
    assert!(
        cert.starts_with(t.config.data_path.as_path()),
        "generated in the data dir"
    );
    let response = t.client.get(t.url("/")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);

    crate::util::install_provider();
    let http1 = reqwest::Client::builder()
        .tls_backend_preconfigured(crate::util::tls_client_config(&cert, &[b"http/1.1"]))
        .http1_only()
        .build()
        .unwrap();
    let response = http1.get(t.url("/")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);

    // A client that does not trust the certificate cannot connect.
    let other_dir = tempfile::tempdir().unwrap();
    let other = soledad_server::Server::start(soledad_server::Config::loopback(other_dir.path()))
        .await
        .unwrap();
    let stranger = client_for(other.cert_path());
    assert!(stranger.get(t.url("/")).send().await.is_err());
    other.shutdown().await.unwrap();

    // The certificate is generated once and reused after a restart.
    let before = std::fs::read(&cert).unwrap();
    let mut t = t;
    t.restart().await;
    assert_eq!(t.cert_path(), cert.as_path());
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    let response = t.client.get(t.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    t.shutdown().await;
}

#[tokio::test]
async fn unknown_route_is_json_404_for_users_and_401_for_anonymous() {
    let t = TestServer::start().await;
    let response = t.client.get(t.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let response = t
        .client
        .get(t.url("/nope"))
        .header("authorization", &t.alice.header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    t.shutdown().await;
}
