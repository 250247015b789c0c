//! Document sync on the server (`docs/protocol.md`): per-user stores of opaque
//! envelopes, each owned by a worker thread, and the exchange that applies a source
//! replica's documents with u1db's rules and streams back what it has not seen.
//!
//! The server never looks into a payload and never stores a conflict: a concurrent
//! revision is left out and the server's version goes back to the source, which
//! records the conflict for its application (u1db's target behaviour).

mod exchange;
mod stores;

pub(crate) use exchange::{exchange, record_sync_info, sync_info};
pub(crate) use stores::DocStoreUsage;
pub use stores::UserStores;
