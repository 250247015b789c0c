//! Admin commands: users and tokens, service tokens, user databases. Each
//! calls [`soledad_server::admin`] and prints the result.

use std::time::SystemTime;

use soledad_server::{Config, admin};

use crate::args::UserCommand;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn expiry(days: Option<u64>) -> anyhow::Result<Option<SystemTime>> {
    Ok(days.map(admin::expiry_after_days).transpose()?)
}

/// `user add|list|remove|token`.
pub(crate) fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match command {
            UserCommand::Add {
                uuid,
                expires_in_days,
            } => {
                let token = admin::add_user(config, &uuid, expiry(expires_in_days)?).await?;
                println!("{}", token.expose());
            }
            UserCommand::Token {
                uuid,
                expires_in_days,
            } => {
                let token = admin::rotate_token(config, &uuid, expiry(expires_in_days)?).await?;
                println!("{}", token.expose());
            }
            UserCommand::Remove { uuid } => admin::remove_user(config, &uuid).await?,
            UserCommand::List => {
                for user in admin::list_users(config).await? {
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
    let token = admin::add_service_token(config, name)?;
    println!("{}", token.expose());
    eprintln!(
        "added service {name:?} to {} (restart the server to use it)",
        config.services_tokens_path().display()
    );
    Ok(())
}

/// `create-userdb user-<uuid>`.
pub(crate) fn create_userdb(config: &Config, name: &str) -> anyhow::Result<()> {
    if runtime()?.block_on(admin::create_user_db(config, name))? {
        eprintln!("created {name}");
    } else {
        eprintln!("{name} already exists");
    }
    Ok(())
}
