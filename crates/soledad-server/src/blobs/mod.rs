//! Server-side blob storage: immutable blobs per user and namespace, with
//! flags, listings, tombstones and a per-user quota.
//!
//! [`BlobBackend`] is the interface the HTTP layer calls; [`FsBlobStore`] is
//! the embedded filesystem implementation (the seed's layout:
//! `root/<uuid>/<namespace>/<id[..1]>/<id[..3]>/<id[..6]>/<id>` plus an
//! `<id>.flags` sidecar). Names reach the disk only as validated [`UserId`],
//! [`Namespace`] and [`BlobId`] values. [`QuotaLedger`] counts each user's
//! bytes for every write path.
//!
//! This module knows no HTTP: status codes, headers and authentication are the
//! HTTP layer's.

mod backend;
mod blocking;
mod claims;
mod clock;
mod error;
mod flags;
mod fs;
mod ids;
pub(crate) mod layout;
mod listing;
mod permits;
mod put;
mod query;
pub(crate) mod quota;
mod range;
mod sidecar;
mod temp;

pub use backend::{BlobBackend, BlobRead, ByteStream};
pub use error::BlobError;
pub use flags::Flag;
pub use fs::{FsBlobConfig, FsBlobStore};
pub use ids::{BlobId, MAX_BLOB_ID_LEN, MAX_NAMESPACE_LEN, MAX_USER_ID_LEN, Namespace, UserId};
pub use permits::default_per_user_writes;
pub use query::{ListQuery, Order};
pub use quota::{
    DOC_ENTRY_OVERHEAD_BYTES, ENTRY_OVERHEAD_BYTES, EmbeddedQuotaCounters, QuotaCounters,
    QuotaLedger, Reservation, Usage, UsageSource,
};
pub use range::RangeSpec;
