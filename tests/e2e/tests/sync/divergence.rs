//! A replica restored from an older copy is detected, not merged.

use serde_json::json;
use soledad_client::{DivergedKind, Error};

use crate::util::{Env, UUID, snapshot};

fn copy_db(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    for suffix in ["", "-wal"] {
        let src = format!("{}{suffix}", from.display());
        let dst = format!("{}{suffix}", to.display());
        if std::path::Path::new(&src).exists() {
            std::fs::copy(&src, &dst).unwrap();
        } else {
            let _ = std::fs::remove_file(&dst);
        }
    }
    let _ = std::fs::remove_file(format!("{}-shm", to.display()));
}

#[tokio::test]
async fn a_local_database_restored_from_an_older_copy_is_refused() {
    let env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({"n": 1}), None).await.unwrap();
    let db = env.home("a").join(format!("{UUID}.db"));
    let backup = env.dir().join("backup").join("a.db");
    copy_db(&db, &backup);
    for n in 2..5 {
        a.create_doc(&json!({"n": n}), None).await.unwrap();
    }
    a.sync().await.unwrap();
    drop(a);

    // The old copy comes back (same replica, older history).
    let restored = env.home("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(
        env.home("a").join("soledad.json"),
        restored.join("soledad.json"),
    )
    .unwrap();
    copy_db(&backup, &restored.join(format!("{UUID}.db")));
    let old = env.device("restored").await;
    let before = snapshot(&old).await;
    let err = old.sync().await.unwrap_err();
    assert!(
        matches!(err, Error::Diverged(DivergedKind::InvalidGeneration)),
        "{err:?}"
    );
    assert_eq!(snapshot(&old).await, before, "nothing merged");
}

#[tokio::test]
async fn a_server_store_restored_from_an_older_copy_is_refused() {
    let mut env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({"n": 1}), None).await.unwrap();
    a.sync().await.unwrap();
    let backup = env.dir().join("server-backup.db");
    env.stop().await;
    env.files().copy_user_store(UUID, &backup).unwrap();
    env.restart().await;

    for n in 2..4 {
        a.create_doc(&json!({"n": n}), None).await.unwrap();
    }
    a.sync().await.unwrap();
    env.stop().await;
    env.files().restore_user_store(UUID, &backup).unwrap();
    env.restart().await;

    // A's device knows a server generation the restored server never had.
    let a = env.device("a").await;
    let before = snapshot(&a).await;
    let err = a.sync().await.unwrap_err();
    assert!(matches!(err, Error::Diverged(_)), "{err:?}");
    assert_eq!(snapshot(&a).await, before);
}
