//! Document attachments (the seed's `put_attachment` … `is_dirty`): one blob per
//! document, in the [`ATTACHMENTS_NAMESPACE`] namespace, referenced from the
//! document's content under [`ATTACHMENT_KEY`]:
//!
//! ```json
//! {"_attachment": {"blob_id": "<32 hex>", "size": 1234, "preamble": "<base64url>"}}
//! ```
//! The reference lives inside the content, so the document's envelope
//! authenticates it; `preamble` is the attachment's whole encoded blob preamble
//! (blob id, size and a random per-blob salt that the content's key depends on),
//! so any other blob served in its place — another attachment swapped in by the
//! server, an older blob under the same id — is refused with
//! [`Error::Integrity`]. Blob ids are random: they reveal nothing of the document
//! id. Attachments are not fetched by document sync: a device sees them
//! [`AttachmentState::Remote`] until asked to download them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use soledad_store::Document;
use tokio::io::AsyncRead;

use crate::blobs::{BlobManager, BlobReader, SyncStatus};
use crate::error::Error;
use crate::soledad::Soledad;

/// Namespace of attachment blobs.
pub const ATTACHMENTS_NAMESPACE: &str = "attachments";
/// Key of the attachment reference in a document's content.
pub const ATTACHMENT_KEY: &str = "_attachment";
/// Longest encoded preamble accepted in a reference.
const MAX_REF_PREAMBLE: usize = soledad_crypto::MAX_PREAMBLE_LEN;

/// Where a document's attachment is (the seed's `AttachmentStates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentState {
    /// The document has no attachment.
    None,
    /// Only on this device (not uploaded yet).
    Local,
    /// Only on the server (not downloaded yet).
    Remote,
    /// On this device and on the server.
    Synced,
}

/// A parsed attachment reference.
struct AttachmentRef {
    blob_id: String,
    preamble: Vec<u8>,
}

fn reference(doc: &Document) -> Result<Option<AttachmentRef>, Error> {
    let Some(content) = doc.value()? else {
        return Ok(None);
    };
    let Some(reference) = content.get(ATTACHMENT_KEY) else {
        return Ok(None);
    };
    let malformed = || Error::Integrity { count: 1 };
    let blob_id = reference
        .get("blob_id")
        .and_then(Value::as_str)
        .ok_or_else(malformed)?
        .to_owned();
    let encoded = reference
        .get("preamble")
        .and_then(Value::as_str)
        .filter(|p| p.len() <= MAX_REF_PREAMBLE * 2)
        .ok_or_else(malformed)?;
    let preamble = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
    Ok(Some(AttachmentRef { blob_id, preamble }))
}

impl Soledad {
    fn attachment_blobs(&self) -> Result<&BlobManager, Error> {
        // Without a blob store there is nowhere to keep attachments.
        self.blobmanager().ok_or(Error::BlobNotFound)
    }

    /// Attaches `size` bytes from `reader` to `doc` (the seed's `put_attachment`):
    /// stores them encrypted locally, queued for upload, and adds the reference to
    /// `doc`'s content. As in the seed, `doc` must then be saved with
    /// [`put_doc`](Soledad::put_doc).
    ///
    /// # Errors
    /// [`Error::BlobAlreadyExists`] if `doc` already has an attachment (delete it
    /// first); [`Error::BlobNotFound`] without a blob store; as
    /// [`BlobManager::put`].
    pub async fn put_attachment<R>(
        &self,
        doc: &mut Document,
        reader: R,
        size: u64,
    ) -> Result<(), Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let blobs = self.attachment_blobs()?;
        if reference(doc)?.is_some() {
            return Err(Error::BlobAlreadyExists);
        }
        let mut content = doc.value()?.unwrap_or_else(|| json!({}));
        let Some(object) = content.as_object_mut() else {
            return Err(Error::Store(soledad_store::StoreError::InvalidContent));
        };
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| Error::Crypto(soledad_crypto::Error::Random))?;
        let blob_id = hex::encode(id);
        let preamble = blobs
            .put_local(
                &blob_id,
                reader,
                size,
                ATTACHMENTS_NAMESPACE,
                SyncStatus::PendingUpload,
            )
            .await?;
        object.insert(
            ATTACHMENT_KEY.to_owned(),
            json!({
                "blob_id": blob_id,
                "size": size,
                "preamble": URL_SAFE_NO_PAD.encode(&preamble),
            }),
        );
        doc.set_value(&content)?;
        Ok(())
    }

    /// The attachment's plaintext (the seed's `get_attachment`): from this device,
    /// else downloaded first. `None` if `doc` has no attachment.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the blob is not the one the document references
    /// (swapped or altered on the server); transfer errors.
    pub async fn get_attachment(&self, doc: &Document) -> Result<Option<BlobReader>, Error> {
        let Some(r) = reference(doc)? else {
            return Ok(None);
        };
        let blobs = self.attachment_blobs()?;
        let row = blobs
            .ensure_local(ATTACHMENTS_NAMESPACE, &r.blob_id, Some(&r.preamble))
            .await?;
        blobs.open_reader(&row, Some(&r.preamble)).await.map(Some)
    }

    /// Uploads the attachment now (the seed's `upload_attachment`); returns its
    /// state afterwards.
    ///
    /// # Errors
    /// As [`BlobManager::put`]'s upload errors.
    pub async fn upload_attachment(&self, doc: &Document) -> Result<AttachmentState, Error> {
        let Some(r) = reference(doc)? else {
            return Ok(AttachmentState::None);
        };
        self.attachment_blobs()?
            .upload(&r.blob_id, ATTACHMENTS_NAMESPACE)
            .await?;
        self.get_attachment_state(doc).await
    }

    /// Downloads the attachment now, checking it is the referenced blob (the
    /// seed's `download_attachment`); returns its state afterwards.
    ///
    /// # Errors
    /// [`Error::Integrity`] (then the blob is `FAILED_DOWNLOAD`), transfer errors.
    pub async fn download_attachment(&self, doc: &Document) -> Result<AttachmentState, Error> {
        let Some(r) = reference(doc)? else {
            return Ok(AttachmentState::None);
        };
        self.attachment_blobs()?
            .ensure_local(ATTACHMENTS_NAMESPACE, &r.blob_id, Some(&r.preamble))
            .await?;
        self.get_attachment_state(doc).await
    }

    /// Deletes the attachment here and on the server and removes the reference
    /// from `doc`'s content (the seed's `delete_attachment`); save `doc` with
    /// [`put_doc`](Soledad::put_doc) afterwards.
    ///
    /// # Errors
    /// As [`BlobManager::delete`]; a document without attachment is left as is.
    pub async fn delete_attachment(&self, doc: &mut Document) -> Result<(), Error> {
        let Some(r) = reference(doc)? else {
            return Ok(());
        };
        match self
            .attachment_blobs()?
            .delete(&r.blob_id, ATTACHMENTS_NAMESPACE)
            .await
        {
            Ok(()) | Err(Error::BlobNotFound) => {}
            Err(err) => return Err(err),
        }
        if let Some(mut content) = doc.value()? {
            if let Some(object) = content.as_object_mut() {
                object.remove(ATTACHMENT_KEY);
            }
            doc.set_value(&content)?;
        }
        Ok(())
    }

    /// Where the attachment is (the seed's `get_attachment_state`). Without a
    /// local record, the server is asked whether it has the blob.
    ///
    /// # Errors
    /// Network errors while asking the server.
    pub async fn get_attachment_state(&self, doc: &Document) -> Result<AttachmentState, Error> {
        let Some(r) = reference(doc)? else {
            return Ok(AttachmentState::None);
        };
        let blobs = self.attachment_blobs()?;
        match blobs.sync_status(&r.blob_id, ATTACHMENTS_NAMESPACE).await? {
            Some(SyncStatus::Synced) => Ok(AttachmentState::Synced),
            Some(SyncStatus::PendingUpload | SyncStatus::FailedUpload | SyncStatus::LocalOnly) => {
                Ok(AttachmentState::Local)
            }
            Some(SyncStatus::PendingDownload | SyncStatus::FailedDownload) => {
                Ok(AttachmentState::Remote)
            }
            None => match blobs.get_flags(&r.blob_id, ATTACHMENTS_NAMESPACE).await {
                Ok(_) => Ok(AttachmentState::Remote),
                Err(Error::BlobNotFound) => Ok(AttachmentState::None),
                Err(err) => Err(err),
            },
        }
    }

    /// Whether `doc`'s content differs from the stored version (the seed's
    /// `is_dirty`), e.g. after [`put_attachment`](Self::put_attachment) and
    /// before [`put_doc`](Soledad::put_doc).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn is_dirty(&self, doc: &Document) -> Result<bool, Error> {
        let stored = self.get_doc(&doc.doc_id, true).await?;
        let stored = match stored {
            Some(stored) => stored.value()?,
            None => return Ok(true),
        };
        Ok(stored != doc.value()?)
    }
}
