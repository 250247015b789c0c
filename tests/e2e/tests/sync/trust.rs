//! The client trusts exactly the certificate it was given (`cert_file`): a server
//! presenting another one is refused before any request, and nothing changes.

use serde_json::json;
use soledad_client::{Error, KdfParams, SecretString, Soledad};

use crate::util::{Env, PASSPHRASE, UUID};

#[tokio::test]
async fn a_server_with_another_certificate_is_refused() {
    let env = Env::start().await;
    let impostor = Env::start().await;
    let a = env.device("a").await;
    a.create_doc(&json!({ "secret": 1 }), Some("d"))
        .await
        .unwrap();

    // Same account and token, but the address of a server whose certificate is not
    // the one this device trusts.
    let home = env.home("a");
    drop(a);
    let device = Soledad::builder(UUID, SecretString::from(PASSPHRASE))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join(format!("{UUID}.db")))
        .server_url(impostor.url())
        .cert_file(env.cert())
        .auth_token(env.token.clone())
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap();
    let result = device.sync().await;
    assert!(matches!(result, Err(Error::Network(_))), "{result:?}");
    // The impostor never received a document store for the user.
    assert!(!impostor.files().user_store_path(UUID).unwrap().exists());
}
