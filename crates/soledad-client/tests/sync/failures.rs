//! Wrong tokens and unreachable servers: typed errors, local data untouched.

use serde_json::json;
use soledad_client::{Error, KdfParams, SecretString, Soledad};

use crate::util::{Env, PASSPHRASE, UUID, snapshot};

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_and_changes_nothing() {
    let env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({"k": 1}), Some("mine")).await.unwrap();
    let home = env.home("a");
    drop(a);
    let wrong = Soledad::builder(UUID, SecretString::from(PASSPHRASE))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .server_url(env.url())
        .cert_file(env.cert())
        .auth_token("not-the-token")
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap();
    let before = snapshot(&wrong).await;
    assert!(matches!(wrong.sync().await, Err(Error::Auth)));
    assert_eq!(snapshot(&wrong).await, before);
}

#[tokio::test]
async fn a_server_that_is_down_is_a_network_error_and_changes_nothing() {
    let mut env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({"k": 1}), Some("mine")).await.unwrap();
    a.sync().await.unwrap();
    a.create_doc(&json!({"k": 2}), Some("later")).await.unwrap();
    env.stop().await;
    let before = snapshot(&a).await;
    assert!(matches!(a.sync().await, Err(Error::Network(_))));
    assert_eq!(snapshot(&a).await, before);
    assert!(!a.syncing());
}

#[tokio::test]
async fn the_wrong_passphrase_does_not_open_the_local_secrets() {
    let env = Env::start().await;
    drop(env.device("a").await);
    let err = env
        .device_with("a", "not the passphrase")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Crypto(soledad_crypto::Error::WrongPassphrase)),
        "{err:?}"
    );
}

#[tokio::test]
async fn two_syncs_at_once_run_one_after_the_other() {
    let env = Env::start().await;
    let a = env.device("a").await;
    for i in 0..50 {
        a.create_doc(&json!({"i": i}), None).await.unwrap();
    }
    let (first, second) = tokio::join!(a.sync(), a.sync());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.sent + second.sent, 50, "each change sent once");
}

#[tokio::test]
async fn the_quota_stops_a_sync_with_a_typed_error_and_nothing_half_written() {
    let env = Env::start_with(|config| config.quota_bytes = 5 << 20).await;
    let a = env.device("a").await;
    a.sync().await.unwrap();
    // 6 MB of documents (three upload batches) against a 5 MiB quota.
    for i in 0..600 {
        a.create_doc(
            &json!({"pad": "q".repeat(10 * 1024), "i": i}),
            Some(&format!("d{i:03}")),
        )
        .await
        .unwrap();
    }
    let before = snapshot(&a).await;
    let err = a.sync().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Server {
                kind: Some(soledad_protocol::ErrorKind::QuotaExceeded),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(snapshot(&a).await, before, "the client keeps everything");
    // The server kept only whole batches, each with its documents complete.
    let sql = crate::util::server_sql(&env);
    let stored: i64 = sql
        .query_row("SELECT COUNT(*) FROM document", [], |r| r.get(0))
        .unwrap();
    assert!(
        stored > 0 && stored < 600,
        "some batches fit, not all: {stored}"
    );
    let b = env.device("b").await;
    let report = b.sync().await.unwrap();
    assert_eq!(report.received as i64, stored);
    for doc in b.get_all_docs(false).await.unwrap().1 {
        assert_eq!(
            a.get_doc(&doc.doc_id, false).await.unwrap().unwrap().json(),
            doc.json()
        );
    }
}
