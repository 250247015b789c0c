//! The token store in K2V ([`GarageTokenStore`]): one item per user in the
//! partition `<prefix>tokens`, holding the SHA-256 of the user's token and its
//! expiry (tokens themselves are never stored). Changes are made under the
//! partition's lease, so `add` of one uuid through two servers registers it
//! once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::k2v::{Item, K2vClient, Range, Write};
use super::lease::Lease;
use crate::auth::{IssuedToken, TokenStore, UserRecord, hash_token, hashes_match};
use crate::blobs::UserId;
use crate::error::Error;

#[derive(Serialize, Deserialize)]
struct Record {
    sha256: String,
    /// Milliseconds since the epoch.
    expires_at_ms: Option<u64>,
}

fn to_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn record(item: &Item) -> Option<Record> {
    item.live()
        .filter_map(|v| serde_json::from_slice::<Record>(v).ok())
        .next()
}

/// Users' tokens in K2V (module doc).
#[derive(Clone, Debug)]
pub struct GarageTokenStore {
    k2v: K2vClient,
    partition: String,
}

impl GarageTokenStore {
    pub(crate) fn new(k2v: K2vClient, prefix: &str) -> GarageTokenStore {
        GarageTokenStore {
            k2v,
            partition: format!("{prefix}tokens"),
        }
    }

    /// Writes `uuid`'s new token under the lease; `must_exist` selects
    /// between `add` (the user must be new) and `rotate`.
    async fn write(
        &self,
        uuid: &str,
        expires_at: Option<SystemTime>,
        must_exist: bool,
    ) -> Result<IssuedToken, Error> {
        UserId::parse(uuid).map_err(|_| Error::InvalidUserId)?;
        let token = IssuedToken::generate()?;
        let lease = Lease::acquire(&self.k2v, &self.partition).await?;
        let result = async {
            let item = self.k2v.read_item(&self.partition, uuid).await?;
            let exists = item.as_ref().and_then(record).is_some();
            if exists && !must_exist {
                return Err(Error::UserExists);
            }
            if !exists && must_exist {
                return Err(Error::NotFound);
            }
            let value = serde_json::to_vec(&Record {
                sha256: hex::encode(hash_token(token.expose())),
                expires_at_ms: expires_at.map(to_ms),
            })
            .map_err(|_| Error::StorageUnavailable)?;
            lease.check()?;
            self.k2v
                .insert_item(
                    &self.partition,
                    uuid,
                    item.as_ref().map(|i| &i.token),
                    value.into(),
                )
                .await?;
            Ok(())
        }
        .await;
        lease.release(&self.k2v).await;
        result.map(|()| token)
    }
}

impl TokenStore for GarageTokenStore {
    fn verify<'a>(&'a self, uuid: &'a str, token: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if UserId::parse(uuid).is_err() {
                return Ok(false);
            }
            let Some(item) = self.k2v.read_item(&self.partition, uuid).await? else {
                return Ok(false);
            };
            let Some(record) = record(&item) else {
                return Ok(false);
            };
            let Ok(stored) = hex::decode(&record.sha256) else {
                return Ok(false);
            };
            let unexpired = record
                .expires_at_ms
                .is_none_or(|at| SystemTime::now() < from_ms(at));
            Ok(hashes_match(&stored, &hash_token(token)) && unexpired)
        })
    }

    fn add<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>> {
        Box::pin(self.write(uuid, expires_at, false))
    }

    fn rotate<'a>(
        &'a self,
        uuid: &'a str,
        expires_at: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<IssuedToken, Error>> {
        Box::pin(self.write(uuid, expires_at, true))
    }

    fn remove<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            UserId::parse(uuid).map_err(|_| Error::InvalidUserId)?;
            let item = self.k2v.read_item(&self.partition, uuid).await?;
            let Some(item) = item.filter(|i| record(i).is_some()) else {
                return Err(Error::NotFound);
            };
            self.k2v
                .insert_batch(&[Write {
                    partition: self.partition.clone(),
                    sort_key: uuid.to_owned(),
                    token: Some(item.token),
                    value: None,
                }])
                .await?;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, Error>> {
        Box::pin(async move {
            let items = self
                .k2v
                .read_all(Range {
                    partition_key: self.partition.clone(),
                    ..Range::default()
                })
                .await?;
            Ok(items
                .into_iter()
                .filter_map(|(uuid, item)| {
                    let record = record(&item)?;
                    Some(UserRecord {
                        uuid,
                        expires_at: record.expires_at_ms.map(from_ms),
                    })
                })
                .collect())
        })
    }

    fn contains<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if UserId::parse(uuid).is_err() {
                return Ok(false);
            }
            let item = self.k2v.read_item(&self.partition, uuid).await?;
            Ok(item.as_ref().and_then(record).is_some())
        })
    }
}
