//! Incoming box throughput (issue 12): 1,000 deliveries of 20 KB sealed mail
//! through the services API (delivery req/s, 8 in flight), then messages/s
//! through one device's processing loop (claim, download, open, mail consumer,
//! save, one sync, mark processed).
//!
//! `cargo bench -p soledad-e2e --bench incoming` (`SOLEDAD_BENCH_INCOMING_N`
//! for another count). Server and device run in this process on loopback: the
//! figures in the README were measured that way, so it stays in-process (the
//! library server, not the binary) to keep them comparable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt as _;
use soledad_client::{INCOMING_NAMESPACE, KdfParams, MailConsumer, SecretString, Soledad};
use soledad_server::TokenStore as _;

const UUID: &str = "bench-user";
const SERVICE_TOKEN: &str = "bench-mx-token";
const MESSAGE_BYTES: usize = 20 * 1024;
const IN_FLIGHT: usize = 8;

fn main() {
    let n: usize = std::env::var("SOLEDAD_BENCH_INCOMING_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n));
}

fn mail(i: usize) -> Vec<u8> {
    let mut text = format!(
        "From: sender{i}@example.org\r\nSubject: bench {i}\r\n\
         Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    text.resize(MESSAGE_BYTES, b'x');
    text
}

async fn run(n: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = soledad_server::Config::loopback(dir.path().join("server"));
    std::fs::create_dir_all(&config.data_path).unwrap();
    std::fs::write(
        config.services_tokens_path(),
        format!("incoming:{SERVICE_TOKEN}\n"),
    )
    .unwrap();
    let tokens =
        Arc::new(soledad_server::SqliteTokenStore::open(&config.token_store_path()).unwrap());
    let token = tokens.add(UUID, None).await.unwrap().expose().to_owned();
    let server = soledad_server::Server::builder(config)
        .token_store(tokens)
        .start()
        .await
        .unwrap();
    let home = dir.path().join("device");
    std::fs::create_dir_all(&home).unwrap();
    let device = Soledad::builder(UUID, SecretString::from("bench passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join("local.db"))
        .server_url(format!("https://{}", server.users_addr()))
        .cert_file(server.cert_path())
        .auth_token(token)
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap();
    let processor = device.incoming(0).unwrap();
    processor.register_consumer(INCOMING_NAMESPACE, Arc::new(MailConsumer));
    processor.publish_key().await.unwrap();

    let mx = soledad_server::deliver::Deliverer::new(
        &format!("http://{}", server.services_addr()),
        "incoming",
        SERVICE_TOKEN,
    )
    .unwrap();
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let mx = mx.clone();
            async move {
                mx.deliver(
                    UUID,
                    Some(&format!("m{i:05}")),
                    std::io::Cursor::new(mail(i)),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let delivery = started.elapsed();
    println!(
        "delivery: {n} x {} KB in {:.2} s = {:.0} req/s ({IN_FLIGHT} in flight, key fetch + seal + PUT each)",
        MESSAGE_BYTES / 1024,
        delivery.as_secs_f64(),
        n as f64 / delivery.as_secs_f64()
    );

    let started = Instant::now();
    let report = processor.process_incoming().await.unwrap();
    let processing = started.elapsed();
    assert_eq!(report.processed.len(), n, "{report:?}");
    println!(
        "processing (one device): {n} messages in {:.2} s = {:.0} messages/s (claim, download, open, parse, save, sync, mark)",
        processing.as_secs_f64(),
        n as f64 / processing.as_secs_f64()
    );
    device.close().await.unwrap();
    server.shutdown().await.unwrap();
}
