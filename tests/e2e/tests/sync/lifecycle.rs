//! The handle's lifecycle around syncs: `close()` really closes, a dropped sync does
//! not leave `syncing()` stuck, and progress reaches a callback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use soledad_client::{Error, KdfParams, SecretString, Soledad, SyncStatsSnapshot};

use crate::util::{Env, UUID};

#[tokio::test]
async fn close_closes_every_clone_and_keeps_what_was_written() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let clone = a.clone();
    a.create_doc(&json!({ "kept": true }), Some("kept"))
        .await
        .unwrap();
    a.close().await.unwrap();
    assert!(matches!(
        clone.get_doc("kept", false).await,
        Err(Error::Closed)
    ));
    assert!(matches!(clone.clone().close().await, Err(Error::Closed)));

    let reopened = env.device("a").await;
    assert!(reopened.get_doc("kept", false).await.unwrap().is_some());
}

#[tokio::test]
async fn a_dropped_sync_does_not_leave_syncing_raised() {
    let env = Env::start().await;
    // A server that accepts connections and never answers: the sync hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let home = env.home("hanging");
    std::fs::create_dir_all(&home).unwrap();
    // Opened against the real server (secrets bootstrap), then pointed at the silent one.
    drop(env.device("hanging").await);
    let device = Soledad::builder(UUID, SecretString::from(crate::util::PASSPHRASE))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .server_url(format!("https://{silent_addr}"))
        .cert_file(env.cert())
        .auth_token(env.token.clone())
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap();

    let syncing = device.clone();
    let task = tokio::spawn(async move { syncing.sync().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !device.syncing() {
        assert!(Instant::now() < deadline, "the sync never started");
        tokio::task::yield_now().await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(!device.syncing(), "an abandoned sync must lower the flag");
    // And the next sync is not blocked by the abandoned one's lock.
    let next = tokio::time::timeout(Duration::from_millis(300), device.sync()).await;
    assert!(
        next.is_err(),
        "still hanging on the silent server, not on a lock"
    );
    assert!(!device.syncing());
    hold.abort();
}

#[tokio::test]
async fn progress_reaches_the_callback_after_every_batch() {
    let env = Env::start().await;
    let a = env.device("a").await;
    a.batch(|batch| {
        for n in 0..600 {
            batch.create_doc(&json!({ "n": n }), None)?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let seen: Arc<Mutex<Vec<SyncStatsSnapshot>>> = Arc::default();
    let sink = seen.clone();
    let report = a
        .sync_with_progress(move |p| sink.lock().unwrap().push(p))
        .await
        .unwrap();
    let sent: Vec<u64> = seen.lock().unwrap().iter().map(|p| p.sent).collect();
    // 600 documents in batches of 256: at least three reports, never going back.
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    assert_eq!(sent.last().copied(), Some(report.sent));

    let b = env.device("b").await;
    let seen: Arc<Mutex<Vec<SyncStatsSnapshot>>> = Arc::default();
    let sink = seen.clone();
    b.sync_with_progress(move |p| sink.lock().unwrap().push(p))
        .await
        .unwrap();
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!((last.received, last.to_receive), (600, 600));
    // The callback is gone once the sync returned.
    let count = seen.lock().unwrap().len();
    b.sync().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), count);
}

/// A long-lived device keeps one HTTP/2 connection; the server's HTTP/2 layer
/// closes a connection (GOAWAY, ENHANCE_YOUR_CALM) once a peer has sent it 100
/// empty DATA frames. Each sync used to send one, so the ~100th sync on a
/// connection failed with a network error.
#[tokio::test]
async fn hundreds_of_syncs_on_one_connection_all_succeed() {
    let env = Env::start().await;
    let a = env.device("a").await;
    for i in 0..250 {
        if i % 10 == 0 {
            a.create_doc(&json!({ "i": i }), None).await.unwrap();
        }
        if let Err(err) = a.sync().await {
            panic!("sync {i} on one connection failed: {err}");
        }
    }
}
