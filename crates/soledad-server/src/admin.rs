//! Administration of the stores of a [`Config`] (the embedded ones, or the
//! Garage cluster with `backend = garage`): what the `soledad-server`
//! binary's admin commands do, callable without the binary (tests,
//! provisioning tools). Each call opens the store it needs and returns;
//! nothing here prints or reads the environment.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::{IssuedToken, SqliteTokenStore, TokenStore, UserRecord, append_service_token};
use crate::config::Config;
use crate::error::Error;
use crate::userdb::{EmbeddedUserDocStores, UserDbName};

/// Seconds in a day, for expiries given in days.
const DAY_SECS: u64 = 86_400;

/// The instant `days` days from now, for a token's `expires_at`.
///
/// # Errors
/// [`Error::Config`] (option `expires_in_days`) when the instant is not
/// representable.
pub fn expiry_after_days(days: u64) -> Result<SystemTime, Error> {
    days.checked_mul(DAY_SECS)
        .and_then(|secs| SystemTime::now().checked_add(Duration::from_secs(secs)))
        .ok_or_else(|| Error::config("expires_in_days", "is too large"))
}

fn token_store(config: &Config) -> Result<Arc<dyn TokenStore>, Error> {
    #[cfg(feature = "garage")]
    if let Some(garage) = crate::server::garage_backend(config)? {
        return Ok(Arc::new(garage.token_store()));
    }
    std::fs::create_dir_all(&config.data_path).map_err(Error::io("creating data_path"))?;
    Ok(Arc::new(SqliteTokenStore::open(
        &config.token_store_path(),
    )?))
}

/// Registers user `uuid` in the token store and returns their first
/// token.
///
/// # Errors
/// [`Error::InvalidUserId`], [`Error::UserExists`], [`Error::Database`] or
/// [`Error::Io`].
pub async fn add_user(
    config: &Config,
    uuid: &str,
    expires_at: Option<SystemTime>,
) -> Result<IssuedToken, Error> {
    token_store(config)?.add(uuid, expires_at).await
}

/// Replaces the token of user `uuid` (the old one stops working at once).
///
/// # Errors
/// [`Error::InvalidUserId`], [`Error::NotFound`], [`Error::Database`] or
/// [`Error::Io`].
pub async fn rotate_token(
    config: &Config,
    uuid: &str,
    expires_at: Option<SystemTime>,
) -> Result<IssuedToken, Error> {
    token_store(config)?.rotate(uuid, expires_at).await
}

/// Removes user `uuid` from the token store (their token stops working).
///
/// # Errors
/// [`Error::InvalidUserId`], [`Error::NotFound`], [`Error::Database`] or
/// [`Error::Io`].
pub async fn remove_user(config: &Config, uuid: &str) -> Result<(), Error> {
    token_store(config)?.remove(uuid).await
}

/// Every registered user, sorted by uuid.
///
/// # Errors
/// [`Error::Database`] or [`Error::Io`].
pub async fn list_users(config: &Config) -> Result<Vec<UserRecord>, Error> {
    token_store(config)?.list().await
}

/// Appends a new token for service `name` to the services tokens file and
/// returns it (a running server reads the file at start only).
///
/// # Errors
/// [`Error::Config`] for a bad service name, [`Error::Io`].
pub fn add_service_token(config: &Config, name: &str) -> Result<IssuedToken, Error> {
    append_service_token(&config.services_tokens_path(), name)
}

/// Creates the document store named `name` (`user-<uuid>`), as the seed's
/// `soledad-create-userdb` did. Returns `false` when it already existed.
///
/// # Errors
/// [`Error::InvalidUserId`] for a bad name, [`Error::UserStore`] or
/// [`Error::Io`].
pub async fn create_user_db(config: &Config, name: &str) -> Result<bool, Error> {
    let name = UserDbName::parse(name)?;
    #[cfg(feature = "garage")]
    if let Some(garage) = crate::server::garage_backend(config)? {
        use crate::userdb::UserDocStores as _;
        return garage.user_doc_stores().create(name.user()).await;
    }
    EmbeddedUserDocStores::new(config.user_dbs_dir())
        .create(name.user())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_in_days_is_checked() {
        let in_a_week = expiry_after_days(7).unwrap();
        let week = Duration::from_secs(7 * DAY_SECS);
        let from_now = in_a_week.duration_since(SystemTime::now()).unwrap();
        assert!(from_now <= week && from_now > week - Duration::from_secs(60));
        assert!(matches!(
            expiry_after_days(u64::MAX),
            Err(Error::Config { option, .. }) if option == "expires_in_days"
        ));
    }

    #[tokio::test]
    async fn admin_calls_manage_the_embedded_stores() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::loopback(dir.path().join("data"));
        let token = add_user(&config, "alice", None).await.unwrap();
        let store = SqliteTokenStore::open(&config.token_store_path()).unwrap();
        assert!(store.verify("alice", token.expose()).await.unwrap());
        let rotated = rotate_token(&config, "alice", None).await.unwrap();
        assert!(!store.verify("alice", token.expose()).await.unwrap());
        assert!(store.verify("alice", rotated.expose()).await.unwrap());
        let users = list_users(&config).await.unwrap();
        assert_eq!(users.len(), 1);
        remove_user(&config, "alice").await.unwrap();
        assert!(list_users(&config).await.unwrap().is_empty());
        assert!(create_user_db(&config, "user-alice").await.unwrap());
        assert!(!create_user_db(&config, "user-alice").await.unwrap());
        assert!(matches!(
            create_user_db(&config, "alice").await,
            Err(Error::InvalidUserId)
        ));
        add_service_token(&config, "incoming").unwrap();
        let tokens = std::fs::read_to_string(config.services_tokens_path()).unwrap();
        assert!(tokens.starts_with("incoming:"));
    }
}
