//! Admin commands: users and tokens, service tokens, user databases.

use std::time::{Duration, SystemTime};

use soledad_server::{
    Config, EmbeddedUserDocStores, SqliteTokenStore, TokenStore as _, UserDbName,
    UserDocStores as _, append_service_token,
};

use super::UserCommand;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn expiry(days: Option<u64>) -> anyhow::Result<Option<SystemTime>> {
    days.map(|days| {
        let secs = days
            .checked_mul(86_400)
            .ok_or_else(|| anyhow::anyhow!("--expires-in-days is too large"))?;
        SystemTime::now()
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| anyhow::anyhow!("--expires-in-days is too large"))
    })
    .transpose()
}

/// `user add|list|remove|token`.
pub(crate) fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let store = SqliteTokenStore::open(&config.token_store_path())?;
    runtime()?.block_on(async move {
        match command {
            UserCommand::Add {
                uuid,
                expires_in_days,
            } => {
                let token = store.add(&uuid, expiry(expires_in_days)?).await?;
                println!("{}", token.expose());
            }
            UserCommand::Token {
                uuid,
                expires_in_days,
            } => {
                let token = store.rotate(&uuid, expiry(expires_in_days)?).await?;
                println!("{}", token.expose());
            }
            UserCommand::Remove { uuid } => store.remove(&uuid).await?,
            UserCommand::List => {
                for user in store.list().await? {
                    let expires = user
                        .expires_at
                        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map_or_else(|| "never".to_owned(), |d| d.as_secs().to_string());
                    println!("{}\t{expires}", user.uuid);
                }
            }
        }
        Ok(())
    })
}

/// `service-token add NAME`.
pub(crate) fn service_token_add(config: &Config, name: &str) -> anyhow::Result<()> {
    let path = config.services_tokens_path();
    let token = append_service_token(&path, name)?;
    println!("{}", token.expose());
    eprintln!(
        "added service {name:?} to {} (restart the server to use it)",
        path.display()
    );
    Ok(())
}

/// `create-userdb user-<uuid>`.
pub(crate) fn create_userdb(config: &Config, name: &str) -> anyhow::Result<()> {
    let name = UserDbName::parse(name)?;
    let stores = EmbeddedUserDocStores::new(config.user_dbs_dir());
    let created = runtime()?.block_on(stores.create(name.user()))?;
    if created {
        eprintln!("created {name}");
    } else {
        eprintln!("{name} already exists");
    }
    Ok(())
}
