//! Bootstrapping secrets through the server, passphrase changes, recovery codes.

use serde_json::json;
use soledad_client::{Error, KdfParams, SecretString, Soledad};

use crate::util::{Env, PASSPHRASE, UUID, snapshot};

async fn fresh_device(env: &Env, name: &str, passphrase: &str) -> Result<Soledad, Error> {
    env.device_with(name, passphrase).await
}

#[tokio::test]
async fn a_new_device_with_uuid_passphrase_and_token_recovers_and_syncs() {
    let env = Env::start().await;
    let a = env.device("a").await;
    for i in 0..20 {
        a.create_doc(&json!({"i": i}), None).await.unwrap();
    }
    a.sync().await.unwrap();

    // Nothing local on "b": the secret comes from the server backup.
    let b = env.device("b").await;
    b.sync().await.unwrap();
    assert_eq!(snapshot(&a).await, snapshot(&b).await);
}

#[tokio::test]
async fn after_a_passphrase_change_only_the_new_passphrase_opens_the_backup() {
    let env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({"k": "v"}), Some("d")).await.unwrap();
    a.sync().await.unwrap();
    a.change_passphrase(
        &SecretString::from(PASSPHRASE),
        &SecretString::from("new passphrase"),
    )
    .await
    .unwrap();

    // Locally: the old one no longer opens the secrets file, the new one does.
    drop(a);
    assert!(env.device_with("a", PASSPHRASE).await.is_err());
    let a = env.device_with("a", "new passphrase").await.unwrap();
    drop(a);

    // On the server: a new device with the old passphrase finds no backup, and
    // since the account has data, refuses to invent a new secret.
    let stale = fresh_device(&env, "stale", PASSPHRASE).await;
    assert!(
        matches!(stale, Err(Error::BackupNotFound)),
        "{:?}",
        stale.err()
    );
    assert!(!env.home("stale").join("soledad.json").exists());

    let fresh = fresh_device(&env, "fresh", "new passphrase").await.unwrap();
    fresh.sync().await.unwrap();
    assert!(fresh.get_doc("d", false).await.unwrap().is_some());
}

#[tokio::test]
async fn a_recovery_code_restores_access_after_the_passphrase_is_forgotten() {
    let env = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({"k": "v"}), Some("d")).await.unwrap();
    a.sync().await.unwrap();
    let code = a.create_recovery_code().await.unwrap();
    let typed = code.expose_text().to_string();

    let home = env.home("recovered");
    std::fs::create_dir_all(&home).unwrap();
    let recovered = Soledad::builder(UUID, SecretString::from("brand new passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .server_url(env.url())
        .cert_file(env.cert())
        .auth_token(env.token.clone())
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .recovery_code(soledad_client::RecoveryCode::parse(&typed.to_lowercase()).unwrap())
        .open()
        .await
        .unwrap();
    recovered.sync().await.unwrap();
    assert_eq!(
        recovered
            .get_doc("d", false)
            .await
            .unwrap()
            .unwrap()
            .value()
            .unwrap(),
        Some(json!({"k": "v"}))
    );
    // The new passphrase now opens the server backup on yet another device.
    let other = env
        .device_with("other", "brand new passphrase")
        .await
        .unwrap();
    other.sync().await.unwrap();
    assert!(other.get_doc("d", false).await.unwrap().is_some());
}
