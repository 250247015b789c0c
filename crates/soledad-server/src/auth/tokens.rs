//! User tokens: the [`TokenStore`] trait and its embedded SQLite implementation.
//!
//! Tokens are 256 random bits, handed out once (base64url) and stored only as
//! their SHA-256 hash, compared in constant time. A slow password hash (scrypt,
//! argon2) is not needed: it only helps secrets with little entropy, and no
//! amount of hashing speed makes guessing a 256-bit random value feasible, so a
//! leaked hash table gives an attacker nothing usable.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use rusqlite::OptionalExtension as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::blobs::UserId;
use crate::error::Error;
use crate::sqlite::SqliteActor;

/// Number of random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// A freshly issued secret token. Shown once to the operator; its `Debug` is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken(String);

impl IssuedToken {
    /// Makes a new random token.
    ///
    /// # Errors
    /// [`Error::Io`] when the system random source fails.
    pub fn generate() -> Result<IssuedToken, Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::Io {
            context: "reading the system random source",
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(IssuedToken(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token text to give to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken(<redacted>)")
    }
}

/// SHA-256 of a token's text.
pub(crate) fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time comparison of two token hashes.
pub(crate) fn hashes_match(a: &[u8], b: &[u8; 32]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b.as_slice()))
}

/// One known user as listed by [`TokenStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's uuid.
    pub uuid: String,
    /// When the user's token stops being accepted, if ever.
    pub expires_at: Option<SystemTime>,
}

/// Where user tokens live. Narrow and asynchronous so another backend (e.g. the
/// provider's accounts database) can replace the embedded one.
///
/// The contract, checked by the conformance suite `conformance::tokens`
/// (feature `conformance`) on every implementation:
/// - a user has at most one current token; it verifies for that user only,
///   and only exactly; each token issued is new ([`IssuedToken::generate`]);
/// - a token stops verifying at once when rotated or its user removed, and
///   from its `expires_at` on (kept to the second at least);
/// - user ids follow [`UserId::parse`]: `verify` answers `false` for any
///   other id, the other calls fail with [`Error::InvalidUserId`].
pub trait TokenStore: Send + Sync + 'static {
    /// True when `token` is the current, unexpired token of `uuid`.
    ///
    /// # Errors
    /// Only when the store itself fails (e.g. [`Error::Database`]).
    fn verify<'a>(&'a self, uuid: &'a str, token: &'a str) -> BoxFuture<'a, Result<bool, Error>>;
    /// Registers a new user and returns their first token.
    ///
    /// # Errors
    /// [`Error::UserExists`] when the user is already known (their token is
    /// kept); [`Error::InvalidUserId`].
    fn add<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>>;
    /// Replaces a user's token and expiry (the old token stops working at
    /// once).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; [`Error::InvalidUserId`].
    fn rotate<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>>;
    /// Forgets a user; their token stops working. They may be added again.
    ///
    /// # Errors
    /// [`Error::NotFound`] if unknown; [`Error::InvalidUserId`].
    fn remove<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// Every known user with their token's expiry, sorted by uuid (bytewise).
    ///
    /// # Errors
    /// Only when the store itself fails.
    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, Error>>;
    /// True when `uuid` is a known user (incoming deliveries to anyone else
    /// are refused). The default walks [`list`](Self::list); stores with an
    /// index should answer directly.
    ///
    /// # Errors
    /// Only when the store itself fails.
    fn contains<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { Ok(self.list().await?.iter().any(|r| r.uuid == uuid)) })
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS user_tokens (
    uuid TEXT PRIMARY KEY NOT NULL,
    token_sha256 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);";

/// The embedded token store: one SQLite file, driven by its own thread.
#[derive(Clone)]
pub struct SqliteTokenStore {
    actor: SqliteActor,
}

impl SqliteTokenStore {
    /// Opens (creating if needed) the token database at `path`.
    ///
    /// # Errors
    /// [`Error::Database`] or [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<SqliteTokenStore, Error> {
        Ok(SqliteTokenStore {
            actor: SqliteActor::open(path, "tokens", SCHEMA)?,
        })
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn from_unix_seconds(seconds: i64) -> SystemTime {
    let magnitude = std::time::Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// One rule for user ids everywhere: [`UserId::parse`].
fn check_uuid(uuid: &str) -> Result<(), Error> {
    UserId::parse(uuid)
        .map(|_| ())
        .map_err(|_| Error::InvalidUserId)
}

impl TokenStore for SqliteTokenStore {
    fn verify<'a>(&'a self, uuid: &'a str, token: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if UserId::parse(uuid).is_err() {
                return Ok(false);
            }
            let presented = hash_token(token);
            let uuid = uuid.to_owned();
            let row: Option<(Vec<u8>, Option<i64>)> = self
                .actor
                .call(move |conn| {
                    Ok(conn
                        .query_row(
                            "SELECT token_sha256, expires_at FROM user_tokens WHERE uuid = ?1",
                            [&uuid],
                            |row| Ok((row.get(0)?, row.get(1)?)),
                        )
                        .optional()?)
                })
                .await?;
            let Some((stored, expires_at)) = row else {
                return Ok(false);
            };
            let unexpired = expires_at.is_none_or(|at| unix_seconds(SystemTime::now()) < at);
            Ok(hashes_match(&stored, &presented) && unexpired)
        })
    }

    fn add<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>> {
        Box::pin(async move {
            check_uuid(uuid)?;
            let token = IssuedToken::generate()?;
            let hash = hash_token(token.expose()).to_vec();
            let uuid = uuid.to_owned();
            let expires = expires_at.map(unix_seconds);
            let now = unix_seconds(SystemTime::now());
            let inserted = self
                .actor
                .call(move |conn| {
                    Ok(conn.execute(
                        "INSERT OR IGNORE INTO user_tokens (uuid, token_sha256, created_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![uuid, hash, now, expires],
                    )?)
                })
                .await?;
            if inserted == 0 {
                return Err(Error::UserExists);
            }
            Ok(token)
        })
    }

    fn rotate<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>> {
        Box::pin(async move {
            check_uuid(uuid)?;
            let token = IssuedToken::generate()?;
            let hash = hash_token(token.expose()).to_vec();
            let uuid = uuid.to_owned();
            let expires = expires_at.map(unix_seconds);
            let updated = self
                .actor
                .call(move |conn| {
                    Ok(conn.execute(
                        "UPDATE user_tokens SET token_sha256 = ?2, expires_at = ?3 WHERE uuid = ?1",
                        rusqlite::params![uuid, hash, expires],
                    )?)
                })
                .await?;
            if updated == 0 {
                return Err(Error::NotFound);
            }
            Ok(token)
        })
    }

    fn remove<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            check_uuid(uuid)?;
            let uuid = uuid.to_owned();
            let removed = self
                .actor
                .call(move |conn| {
                    Ok(conn.execute("DELETE FROM user_tokens WHERE uuid = ?1", [&uuid])?)
                })
                .await?;
            if removed == 0 {
                return Err(Error::NotFound);
            }
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, Error>> {
        Box::pin(async move {
            self.actor
                .call(|conn| {
                    let mut stmt =
                        conn.prepare("SELECT uuid, expires_at FROM user_tokens ORDER BY uuid")?;
                    let rows = stmt.query_map([], |row| {
                        Ok(UserRecord {
                            uuid: row.get(0)?,
                            expires_at: row.get::<_, Option<i64>>(1)?.map(from_unix_seconds),
                        })
                    })?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
        })
    }
}
