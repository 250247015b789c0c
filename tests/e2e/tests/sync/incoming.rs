//! The incoming box end to end: an MX delivers sealed messages through the
//! services API of a real server; devices of the user claim, open and process
//! them into documents.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use soledad_client::{
    ConsumerError, INCOMING_NAMESPACE, IncomingBoxConsumer, IncomingProcessor, MailConsumer,
    Soledad, incoming_doc_id,
};
use soledad_server::deliver::Deliverer;

use crate::util::{Env, UUID};

const MARKER: &str = "PLAINTEXT-MARKER-7c41";

async fn env_with(threshold_secs: u64) -> Env {
    let threshold = threshold_secs.to_string();
    Env::start_with(&[("processing_threshold_secs", &threshold)]).await
}

fn mx(env: &Env) -> Deliverer {
    Deliverer::new(
        &env.server.services_url(),
        "incoming",
        env.server.service_token("incoming"),
    )
    .unwrap()
}

fn mail(n: usize) -> Vec<u8> {
    format!(
        "From: sender{n}@example.org\r\nSubject: message {n}\r\n\
         Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n{MARKER} body of {n}\r\n"
    )
    .into_bytes()
}

async fn processor(device: &Soledad) -> IncomingProcessor {
    let processor = device.incoming(0).unwrap();
    processor.register_consumer(INCOMING_NAMESPACE, Arc::new(MailConsumer));
    processor
}

async fn mail_docs(device: &Soledad) -> Vec<(String, Value)> {
    let (_, docs) = device.get_all_docs(false).await.unwrap();
    docs.into_iter()
        .filter_map(|doc| {
            let content: Value = serde_json::from_str(doc.content?.as_str()).ok()?;
            (content["type"] == "mail").then_some((doc.doc_id.into_string(), content))
        })
        .collect()
}

/// Every file under `dir` searched for `needle`.
fn any_file_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    crate::util::files_under(dir).iter().any(|path| {
        std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

/// The user's incoming box as the server lists it (PROCESSING and FAILED too).
async fn box_ids(env: &Env, device_version: u64) -> Vec<String> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls(env))
        .build()
        .unwrap();
    let listing: Value = client
        .get(format!(
            "{}/incoming/{UUID}?include_processing=true&version={device_version}",
            env.url()
        ))
        .header("authorization", user_header(env))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listing["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn user_header(env: &Env) -> String {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{UUID}:{}", env.token));
    format!("Token {credentials}")
}

fn tls(env: &Env) -> rustls::ClientConfig {
    let pem = std::fs::read(env.cert()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_turn_a_hundred_messages_into_one_document_each() {
    let env = env_with(600).await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let pa = processor(&a).await;
    let pb = processor(&b).await;
    assert_eq!(
        pa.public_key(),
        pb.public_key(),
        "both devices derive the same key"
    );
    pa.publish_key().await.unwrap();

    let mx = mx(&env);
    for n in 0..100 {
        mx.deliver(
            UUID,
            Some(&format!("msg{n:03}")),
            std::io::Cursor::new(mail(n)),
        )
        .await
        .unwrap();
    }
    assert!(
        !any_file_contains(env.data_path(), MARKER.as_bytes()),
        "the server holds plaintext"
    );

    let (ra, rb) = tokio::join!(pa.process_incoming(), pb.process_incoming());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let seen_a: HashSet<_> = ra.processed.iter().cloned().collect();
    let seen_b: HashSet<_> = rb.processed.iter().cloned().collect();
    assert!(seen_a.is_disjoint(&seen_b), "a message processed twice");
    assert_eq!(seen_a.len() + seen_b.len(), 100, "{ra:?} {rb:?}");
    assert!(ra.failed.is_empty() && rb.failed.is_empty());
    assert!(box_ids(&env, 1).await.is_empty(), "the box ends empty");

    a.sync().await.unwrap();
    b.sync().await.unwrap();
    for device in [&a, &b] {
        let docs = mail_docs(device).await;
        assert_eq!(docs.len(), 100);
        let ids: HashSet<_> = docs.iter().map(|(id, _)| id.clone()).collect();
        for n in 0..100 {
            assert!(ids.contains(&incoming_doc_id(&format!("msg{n:03}"), 0)));
        }
        let seven = docs
            .iter()
            .find(|(id, _)| *id == incoming_doc_id("msg007", 0))
            .unwrap();
        assert_eq!(seven.1["subject"], "message 7");
        assert_eq!(seven.1["from"], "sender7@example.org");
        assert_eq!(seven.1["date"], "Mon, 30 Nov 2026 10:00:00 +0000");
    }
    assert!(
        !any_file_contains(env.data_path(), MARKER.as_bytes()),
        "the server holds plaintext"
    );
}

#[tokio::test]
async fn a_claim_of_a_dead_device_expires_and_another_processes_the_message_once() {
    let env = env_with(1).await;
    let b = env.device("b").await;
    let pb = processor(&b).await;
    pb.publish_key().await.unwrap();
    mx(&env)
        .deliver(UUID, Some("orphan"), std::io::Cursor::new(mail(1)))
        .await
        .unwrap();
    // Device "a" claims it and dies (never marks it).
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls(&env))
        .build()
        .unwrap();
    let claimed = client
        .post(format!("{}/incoming/{UUID}/orphan/claim", env.url()))
        .header("authorization", user_header(&env))
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 200);

    let first = pb.process_incoming().await.unwrap();
    assert!(first.processed.is_empty(), "claimed by the dead device");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let report = loop {
        let report = pb.process_incoming().await.unwrap();
        if !report.processed.is_empty() {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the claim never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report.processed, ["orphan"]);
    assert_eq!(mail_docs(&b).await.len(), 1);
    assert!(box_ids(&env, 1).await.is_empty());
    assert!(pb.process_incoming().await.unwrap().processed.is_empty());
}

struct Failing;

impl IncomingBoxConsumer for Failing {
    fn version(&self) -> u64 {
        1
    }
    fn process(&self, _: &str, _: &[u8]) -> Result<Vec<Value>, ConsumerError> {
        Err(ConsumerError::new("version 1 cannot parse this"))
    }
}

struct Fixed;

impl IncomingBoxConsumer for Fixed {
    fn version(&self) -> u64 {
        2
    }
    fn process(&self, id: &str, plaintext: &[u8]) -> Result<Vec<Value>, ConsumerError> {
        MailConsumer.process(id, plaintext)
    }
}

#[tokio::test]
async fn a_failing_consumer_marks_failed_and_a_newer_version_processes_it() {
    let env = env_with(600).await;
    let a = env.device("a").await;
    let p = a.incoming(0).unwrap();
    p.publish_key().await.unwrap();
    mx(&env)
        .deliver(UUID, Some("hard"), std::io::Cursor::new(mail(3)))
        .await
        .unwrap();
    p.register_consumer(INCOMING_NAMESPACE, Arc::new(Failing));
    let report = p.process_incoming().await.unwrap();
    assert_eq!(report.failed, ["hard"]);
    assert_eq!(box_ids(&env, 2).await, ["hard"], "kept, FAILED");
    // The same version does not retry it.
    let again = p.process_incoming().await.unwrap();
    assert!(again.failed.is_empty() && again.processed.is_empty());
    p.register_consumer(INCOMING_NAMESPACE, Arc::new(Fixed));
    let fixed = p.process_incoming().await.unwrap();
    assert_eq!(fixed.processed, ["hard"]);
    assert_eq!(mail_docs(&a).await.len(), 1);
    assert!(box_ids(&env, 3).await.is_empty());
}

#[tokio::test]
async fn a_message_sealed_to_another_key_fails_without_blocking_the_rest() {
    let env = env_with(600).await;
    let a = env.device("a").await;
    let p = processor(&a).await;
    p.publish_key().await.unwrap();
    let mx = mx(&env);
    mx.deliver(UUID, Some("good1"), std::io::Cursor::new(mail(1)))
        .await
        .unwrap();
    // Sealed to somebody else's key, delivered raw.
    let other = soledad_crypto::IncomingIdentity::derive(
        &soledad_crypto::StorageSecret::from_bytes([9; soledad_crypto::STORAGE_SECRET_LEN]),
        0,
    )
    .unwrap();
    let mut writer = soledad_crypto::seal_incoming(&other.public_key(), Vec::new()).unwrap();
    writer.write_all(&mail(2)).unwrap();
    let sealed = writer.finish().unwrap();
    let status = reqwest::Client::new()
        .put(format!(
            "http://{}/incoming/{UUID}/stranger",
            env.server.services_addr()
        ))
        .header(
            "authorization",
            env.server.service_authorization("incoming"),
        )
        .body(sealed)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    mx.deliver(UUID, Some("good2"), std::io::Cursor::new(mail(3)))
        .await
        .unwrap();

    let mut progress = Vec::new();
    let report = p
        .process_incoming_with_progress(|step| progress.push(step.done))
        .await
        .unwrap();
    assert_eq!(report.failed, ["stranger"]);
    let processed: HashSet<_> = report.processed.into_iter().collect();
    assert_eq!(
        processed,
        HashSet::from(["good1".to_owned(), "good2".to_owned()])
    );
    assert_eq!(progress, [1, 2, 3]);
    assert_eq!(mail_docs(&a).await.len(), 2);
}

#[tokio::test]
async fn oversized_messages_are_skipped_and_listed_and_the_background_loop_runs() {
    let env = env_with(600).await;
    let a = env.device("a").await;
    let p = processor(&a).await.size_limit(4096);
    p.publish_key().await.unwrap();
    let mx = mx(&env);
    let mut big = mail(1);
    big.extend(std::iter::repeat_n(b'x', 10_000));
    mx.deliver(UUID, Some("big"), std::io::Cursor::new(big))
        .await
        .unwrap();
    mx.deliver(UUID, Some("small"), std::io::Cursor::new(mail(2)))
        .await
        .unwrap();

    let background = p.spawn(Duration::from_millis(100));
    let mut reports = background.reports();
    let report = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            reports.changed().await.unwrap();
            if let Some(report) = reports.borrow_and_update().clone() {
                break report;
            }
        }
    })
    .await
    .unwrap();
    background.stop().await;
    assert_eq!(report.processed, ["small"]);
    assert_eq!(report.skipped_oversized, ["big"]);
    assert_eq!(box_ids(&env, 1).await, ["big"]);
    assert_eq!(mail_docs(&a).await.len(), 1);
}
