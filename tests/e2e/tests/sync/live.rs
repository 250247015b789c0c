//! Live sync between devices with no call to `sync()`: writes propagate, a
//! conflict reaches the application as an event, a server restart in the
//! middle of a wait loses nothing, and stopping or closing leaves no task.

use std::time::{Duration, Instant};

use serde_json::json;
use soledad_client::{Error, LiveEvent, LiveOptions, Soledad};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::util::{Env, PASSPHRASE, UUID};

/// Bounded wait for anything to show up.
const DEADLINE: Duration = Duration::from_secs(10);

/// Quick retries: a restarted server is found again within a second.
fn options() -> LiveOptions {
    LiveOptions::default()
        .backoff(Duration::from_millis(20), Duration::from_millis(300))
        .wait(Duration::from_secs(5))
}

/// The next event `pick` accepts, within [`DEADLINE`].
async fn next_event<T>(
    events: &mut Receiver<LiveEvent>,
    what: &str,
    mut pick: impl FnMut(&LiveEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"));
        match event {
            Ok(event) => {
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => panic!("event stream closed before {what}"),
        }
    }
}

async fn connected(events: &mut Receiver<LiveEvent>) {
    next_event(events, "Connected", |e| {
        matches!(e, LiveEvent::Connected).then_some(())
    })
    .await;
}

/// Polls `device` until it holds `doc_id` with `content`.
async fn arrives(device: &Soledad, doc_id: &str, content: &serde_json::Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(doc) = device.get_doc(doc_id, false).await.unwrap()
            && doc.value().unwrap().as_ref() == Some(content)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{doc_id} never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_write_on_one_live_device_appears_on_the_other_without_sync() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let live_a = a.start_live_sync(options()).await.unwrap();
    let live_b = b.start_live_sync(options()).await.unwrap();
    let mut events_b = live_b.subscribe();
    connected(&mut events_b).await;

    for n in 0..3 {
        let content = json!({ "n": n });
        let id = format!("note-{n}");
        a.create_doc(&content, Some(&id)).await.unwrap();
        arrives(&b, &id, &content).await;
        let ids = next_event(&mut events_b, "DocumentsChanged", |e| match e {
            LiveEvent::DocumentsChanged { doc_ids, .. } if doc_ids.iter().any(|d| *d == id) => {
                Some(doc_ids.clone())
            }
            _ => None,
        })
        .await;
        assert!(ids.iter().any(|d| *d == id));
    }
    // And back: B's edit reaches A.
    let mut doc = b.get_doc("note-0", false).await.unwrap().unwrap();
    doc.set_value(&json!({ "n": "edited on b" })).unwrap();
    b.put_doc(&mut doc).await.unwrap();
    arrives(&a, "note-0", &json!({ "n": "edited on b" })).await;
    // Neither application ever called sync().
    live_a.stop().await;
    live_b.stop().await;
}

#[tokio::test]
async fn a_conflict_between_two_live_devices_reaches_the_application() {
    let mut env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let live_a = a.start_live_sync(options()).await.unwrap();
    let live_b = b.start_live_sync(options()).await.unwrap();
    let (mut events_a, mut events_b) = (live_a.subscribe(), live_b.subscribe());
    a.create_doc(&json!({ "v": 0 }), Some("shared"))
        .await
        .unwrap();
    arrives(&b, "shared", &json!({ "v": 0 })).await;

    // Both edit while the server is away: the edits are concurrent for sure.
    env.stop().await;
    for (device, value) in [(&a, "from a"), (&b, "from b")] {
        let mut doc = device.get_doc("shared", false).await.unwrap().unwrap();
        doc.set_value(&json!({ "v": value })).unwrap();
        device.put_doc(&mut doc).await.unwrap();
    }
    env.restart().await;

    // Whichever device uploads second learns of the conflict, as an event.
    let conflicted = tokio::select! {
        ids = next_event(&mut events_a, "Conflicts on a", conflicts) => (&a, ids),
        ids = next_event(&mut events_b, "Conflicts on b", conflicts) => (&b, ids),
    };
    let (device, ids) = conflicted;
    assert_eq!(ids, ["shared"]);
    let versions = device.get_doc_conflicts("shared").await.unwrap();
    assert_eq!(versions.len(), 2, "current and the concurrent one");
    // Resolving on that device converges both, still without sync().
    let mut current = versions[0].clone();
    let revs: Vec<soledad_client::Rev> = versions.iter().filter_map(|d| d.rev.clone()).collect();
    current.set_value(&json!({ "v": "merged" })).unwrap();
    device.resolve_doc(&mut current, &revs).await.unwrap();
    for d in [&a, &b] {
        arrives(d, "shared", &json!({ "v": "merged" })).await;
    }
    live_a.stop().await;
    live_b.stop().await;
}

fn conflicts(event: &LiveEvent) -> Option<Vec<soledad_client::DocId>> {
    match event {
        LiveEvent::Conflicts { doc_ids } => Some(doc_ids.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_server_restart_in_the_middle_of_a_wait_loses_no_change() {
    let mut env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let live_a = a.start_live_sync(options()).await.unwrap();
    let live_b = b.start_live_sync(options()).await.unwrap();
    let mut events_b = live_b.subscribe();
    connected(&mut events_b).await;

    // B waits; the server goes away and A writes while it is gone.
    env.stop().await;
    next_event(&mut events_b, "Disconnected", |e| {
        matches!(e, LiveEvent::Disconnected { .. }).then_some(())
    })
    .await;
    a.create_doc(&json!({ "while": "down" }), Some("during"))
        .await
        .unwrap();
    env.restart().await;
    // B comes back by itself and catches up; so does A's upload.
    connected(&mut events_b).await;
    arrives(&b, "during", &json!({ "while": "down" })).await;
    // Waits after the restart work as before.
    a.create_doc(&json!({ "while": "up" }), Some("after"))
        .await
        .unwrap();
    arrives(&b, "after", &json!({ "while": "up" })).await;
    live_a.stop().await;
    live_b.stop().await;
}

#[tokio::test]
async fn stop_and_close_leave_no_task_running() {
    // One wait per user: a second device waits only once the first is gone.
    // A's waits last 30 s: one left behind would keep B out past the deadline.
    let env = Env::start_with(&[("live_waits_per_user", "1")]).await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let live_a = a
        .start_live_sync(options().wait(Duration::from_secs(30)))
        .await
        .unwrap();
    let mut events_a = live_a.subscribe();
    connected(&mut events_a).await;
    assert!(matches!(
        a.start_live_sync(options()).await,
        Err(Error::LiveSyncRunning)
    ));

    live_a.stop().await;
    // The stream ends: nothing of the task is left to send.
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match events_a.recv().await {
                Err(RecvError::Closed) => break,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream must close after stop");
    // A's wait is gone from the server (its stream reset reaches the server
    // shortly): B gets the user's only slot long before A's wait would end.
    let live_b = b.start_live_sync(options()).await.unwrap();
    let mut events_b = live_b.subscribe();
    connected(&mut events_b).await;

    // close() stops the live task of that database too.
    assert!(live_b.is_running());
    b.close().await.unwrap();
    assert!(!live_b.is_running());
    // And A may go live again once its first task is stopped.
    let again = a.start_live_sync(options()).await.unwrap();
    let mut events = again.subscribe();
    connected(&mut events).await;
    again.stop().await;
}

#[tokio::test]
async fn a_burst_of_local_writes_goes_in_few_syncs() {
    let env = Env::start().await;
    let a = env.device("a").await;
    let b = env.device("b").await;
    let live_a = a
        .start_live_sync(options().debounce(Duration::from_millis(20)))
        .await
        .unwrap();
    let live_b = b.start_live_sync(options()).await.unwrap();
    let mut events_a = live_a.subscribe();
    connected(&mut events_a).await;
    const WRITES: usize = 60;
    for n in 0..WRITES {
        a.create_doc(&json!({ "n": n }), Some(&format!("burst-{n:02}")))
            .await
            .unwrap();
    }
    arrives(&b, "burst-59", &json!({ "n": 59 })).await;
    // Count A's uploads until every write is on the server.
    let mut uploads = 0;
    let mut sent = 0;
    while sent < WRITES as u64 {
        sent += next_event(&mut events_a, "uploads of the burst", |e| match e {
            LiveEvent::Synced { report } if report.sent > 0 => Some(report.sent),
            _ => None,
        })
        .await;
        uploads += 1;
    }
    assert!(
        uploads < WRITES / 2,
        "{uploads} uploads for {WRITES} writes: the debounce gathers a burst"
    );
    live_a.stop().await;
    live_b.stop().await;
}

/// A notifier that never knows a marker: what servers sharing no notifier
/// look like to a device (each request lands on a process that answers at
/// once with every kind). Records when each wait came.
#[derive(Default)]
struct Amnesiac {
    waits: std::sync::Mutex<Vec<Instant>>,
}

impl soledad_server::notify::ChangeNotifier for Amnesiac {
    fn notify<'a>(
        &'a self,
        _user: &'a soledad_server::blobs::UserId,
        _kind: soledad_server::notify::ChangeKind,
        _source: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn wait<'a>(
        &'a self,
        _user: &'a soledad_server::blobs::UserId,
        _since: Option<&'a str>,
        _source: Option<&'a str>,
        _timeout: Duration,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<soledad_server::notify::ChangesResponse, soledad_server::Error>,
    > {
        let mut waits = self.waits.lock().unwrap();
        waits.push(Instant::now());
        let marker = format!("m{}", waits.len());
        Box::pin(async move {
            Ok(soledad_server::notify::ChangesResponse {
                changed: soledad_server::notify::ChangeKind::ALL.to_vec(),
                marker,
            })
        })
    }
}

#[tokio::test]
async fn servers_that_never_know_the_marker_get_a_backing_off_client_not_a_busy_loop() {
    // In-process on purpose: the test injects its own notifier, which only the
    // library's `ServerBuilder` can do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = soledad_server::Config::loopback(dir.path().join("server"));
    std::fs::create_dir_all(&config.data_path).unwrap();
    let tokens = std::sync::Arc::new(
        soledad_server::SqliteTokenStore::open(&config.token_store_path()).unwrap(),
    );
    let token = soledad_server::TokenStore::add(&*tokens, UUID, None)
        .await
        .unwrap()
        .expose()
        .to_owned();
    let amnesiac = std::sync::Arc::new(Amnesiac::default());
    let server = soledad_server::Server::builder(config)
        .token_store(tokens)
        .change_notifier(amnesiac.clone())
        .start()
        .await
        .unwrap();
    let home = dir.path().join("a");
    std::fs::create_dir_all(&home).unwrap();
    let a = soledad_client::Soledad::builder(UUID, soledad_client::SecretString::from(PASSPHRASE))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .server_url(format!("https://{}", server.users_addr()))
        .cert_file(server.cert_path())
        .auth_token(token)
        .danger_kdf_params(soledad_client::KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap();
    let live = a.start_live_sync(options()).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while amnesiac.waits.lock().unwrap().len() < 8 {
        assert!(Instant::now() < deadline, "the device stopped asking");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live.stop().await;
    let waits = amnesiac.waits.lock().unwrap().clone();
    // Back-off from the second unknown marker in a row on: 20, 40, 80, 160,
    // 300 ms (the test options) before the 4th to 8th waits.
    let spent = waits[7] - waits[0];
    assert!(
        spent >= Duration::from_millis(500),
        "8 waits in {spent:?}: the client must back off"
    );
}
