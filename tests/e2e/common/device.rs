//! Opening a test device: one helper for the e2e tests and benches, which
//! include this file with `#[path = "…/common/device.rs"] mod device;`.

use std::path::Path;

use soledad_client::{KdfParams, SecretString, Soledad};

/// Opens (or reopens) a device of `uuid` in its own directory `home`, synced
/// through `url`, with a throw-away passphrase and the fast test KDF.
pub async fn open_device(uuid: &str, home: &Path, url: &str, cert: &Path, token: &str) -> Soledad {
    std::fs::create_dir_all(home).unwrap();
    Soledad::builder(uuid, SecretString::from("e2e passphrase"))
        .secrets_path(home.join("soledad.json"))
        .local_db_path(home.join("local.db"))
        .server_url(url)
        .cert_file(cert)
        .auth_token(token)
        .danger_kdf_params(KdfParams::insecure_fast_for_tests())
        .open()
        .await
        .unwrap()
}
