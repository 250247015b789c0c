//! The shared store in K2V ([`GarageSharedStore`]): one item per document in
//! the owner's partition `<prefix>shared-<uuid>`, holding its revision,
//! content type and content. Writes happen under the partition's lease, so
//! "replace only at the current revision" holds across servers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::k2v::{Item, K2vClient, Write};
use super::lease::Lease;
use crate::blobs::UserId;
use crate::error::Error;
use crate::shared::{SharedDoc, SharedDocId, SharedRev, SharedStore, SharedWrite};

#[derive(Serialize, Deserialize)]
struct Record {
    rev: String,
    content_type: Option<String>,
    /// Base64.
    content: String,
}

fn doc(item: &Item) -> Option<SharedDoc> {
    item.live()
        .filter_map(|v| serde_json::from_slice::<Record>(v).ok())
        .filter_map(|r| {
            Some(SharedDoc {
                rev: SharedRev::new(r.rev),
                content: STANDARD.decode(r.content).ok()?,
                content_type: r.content_type,
            })
        })
        .next()
}

fn content_len(doc: &SharedDoc) -> u64 {
    u64::try_from(doc.content.len()).unwrap_or(u64::MAX)
}

/// Shared documents in K2V (module doc).
#[derive(Clone, Debug)]
pub struct GarageSharedStore {
    k2v: K2vClient,
    prefix: String,
}

impl GarageSharedStore {
    pub(crate) fn new(k2v: K2vClient, prefix: &str) -> GarageSharedStore {
        GarageSharedStore {
            k2v,
            prefix: prefix.to_owned(),
        }
    }

    fn partition(&self, owner: &UserId) -> String {
        format!("{}shared-{}", self.prefix, owner.as_str())
    }

    async fn locked<T>(
        &self,
        pk: &str,
        write: impl AsyncFnOnce(&Lease) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let lease = Lease::acquire(&self.k2v, pk).await?;
        let result = write(&lease).await;
        lease.release(&self.k2v).await;
        result
    }
}

impl SharedStore for GarageSharedStore {
    fn get<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
    ) -> BoxFuture<'a, Result<Option<SharedDoc>, Error>> {
        Box::pin(async move {
            let item = self
                .k2v
                .read_item(&self.partition(owner), id.as_str())
                .await?;
            Ok(item.as_ref().and_then(doc))
        })
    }

    fn put<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        old_rev: Option<&'a SharedRev>,
        content: Vec<u8>,
        content_type: Option<String>,
    ) -> BoxFuture<'a, Result<SharedWrite, Error>> {
        Box::pin(async move {
            let pk = self.partition(owner);
            self.locked(&pk, async |lease| {
                let item = self.k2v.read_item(&pk, id.as_str()).await?;
                let current = item.as_ref().and_then(doc);
                if current.as_ref().map(|d| &d.rev) != old_rev {
                    return Err(Error::RevisionConflict);
                }
                let rev = SharedRev::next(current.as_ref().map(|d| &d.rev))?;
                let value = serde_json::to_vec(&Record {
                    rev: rev.as_str().to_owned(),
                    content_type,
                    content: STANDARD.encode(&content),
                })
                .map_err(|_| Error::StorageUnavailable)?;
                lease.check()?;
                self.k2v
                    .insert_item(
                        &pk,
                        id.as_str(),
                        item.as_ref().map(|i| &i.token),
                        value.into(),
                    )
                    .await?;
                Ok(SharedWrite {
                    rev,
                    replaced_bytes: current.as_ref().map_or(0, content_len),
                })
            })
            .await
        })
    }

    fn delete<'a>(
        &'a self,
        owner: &'a UserId,
        id: &'a SharedDocId,
        rev: &'a SharedRev,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let pk = self.partition(owner);
            self.locked(&pk, async |lease| {
                let item = self.k2v.read_item(&pk, id.as_str()).await?;
                let (Some(item), Some(current)) = (item.as_ref(), item.as_ref().and_then(doc))
                else {
                    return Err(Error::NotFound);
                };
                if &current.rev != rev {
                    return Err(Error::RevisionConflict);
                }
                lease.check()?;
                self.k2v
                    .insert_batch(&[Write {
                        partition: pk.clone(),
                        sort_key: id.as_str().to_owned(),
                        token: Some(item.token.clone()),
                        value: None,
                    }])
                    .await?;
                Ok(content_len(&current))
            })
            .await
        })
    }
}
