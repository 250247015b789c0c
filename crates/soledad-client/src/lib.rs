//! The library applications embed to use Soledad: a user's JSON documents in an
//! encrypted local database (u1db semantics: revisions, conflicts, indexes),
//! synchronised through a Soledad server that only ever sees ciphertext.
//!
//! [`Soledad::open`] finds the user's storage secret (local secrets file, else the
//! encrypted backup on the server, else a new one whose backup it uploads), opens the
//! local database with a key derived from it, and offers the seed's API:
//! `create_doc`, `get_doc`, `put_doc`, `delete_doc`, the index queries,
//! `get_doc_conflicts`/`resolve_doc`, and [`Soledad::sync`].
//!
//! What leaves the device: document ids hidden behind an HMAC, contents sealed in
//! authenticated envelopes bound to id and revision (`docs/crypto.md`), over the
//! protocol of `docs/protocol.md`. Documents that fail authentication are refused
//! with [`Error::Integrity`]; an older revision than the local one is superseded
//! (kept local, nothing lost), as in u1db; a server whose position moves backwards is
//! [`Error::Diverged`].
//!
//! Blobs ([`BlobManager`], opened [`with_blobs`](SoledadBuilder::with_blobs)) are
//! encrypted locally in the blob stream format and synchronised through the
//! server's blobs API; a document can carry one attachment (a blob bound to it by
//! the document's envelope), downloaded only when asked.
//!
//! Live sync ([`Soledad::start_live_sync`]) keeps a device in step without
//! calls to `sync()`: it waits on the server's change notifications, uploads
//! local writes after a short debounce and reports what happened as
//! [`LiveEvent`]s.

#![forbid(unsafe_code)]

mod attachments;
mod batch;
mod blobs;
mod error;
mod incoming;
mod live;
mod secrets;
mod soledad;
mod sync;
mod transport;

pub use attachments::{ATTACHMENTS_NAMESPACE, AttachmentState};
pub use batch::DocBatch;
pub use blobs::{
    BlobConfig, BlobManager, BlobReader, BlobSyncReport, DEFAULT_NAMESPACE, Flag, MAX_BLOB_ID_LEN,
    MAX_NAMESPACE_LEN, Order, RemoteListQuery, SyncProgress, SyncStatus, TransferProgress,
};
pub use error::{DivergedKind, Error};
pub use incoming::{
    ConsumerError, INCOMING_NAMESPACE, IncomingBoxConsumer, IncomingLoop, IncomingProcessor,
    IncomingProgress, IncomingReport, MAIL_CONSUMER_VERSION, MAX_INCOMING_MESSAGE_BYTES,
    MailConsumer, incoming_doc_id, parse_mail_headers,
};
pub use live::{
    DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_MIN, DEFAULT_DEBOUNCE, DEFAULT_EVENT_CAPACITY,
    DEFAULT_WAIT, LiveEvent, LiveOptions, LiveSync, MAX_EVENT_IDS,
};
pub use secrecy::SecretString;
pub use soledad::{Soledad, SoledadBuilder, SyncStatsSnapshot};
pub use soledad_crypto::{KdfParams, RecoveryCode};
pub use soledad_store::{DocId, Document, Rev, StoreError};
pub use sync::{SyncReport, SyncStats};
