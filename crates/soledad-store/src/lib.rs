//! Soledad's document database: u1db's semantics (documents with vector-clock
//! revisions, tombstones, a transaction log of generations, conflicts, sync
//! metadata, indexes) over SQLite, encrypted with SQLCipher when opened with a
//! key.
//!
//! It serves two masters. The client opens a [`Database`] of JSON documents
//! ([`JsonContent`], indexes, equal-content merges) with a raw 32-byte key. The
//! server opens an [`OpaqueDatabase`] of ciphertext payloads (`Vec<u8>`, never
//! looked into, no indexes) unencrypted. A plaintext file is only ever created
//! through a method named `open_unencrypted`.
//!
//! It does not: encrypt documents (that is `soledad-crypto`), talk to the
//! network, or offer async APIs (own the `Send` handle on a dedicated thread).
//!
//! ```
//! use serde_json::json;
//! use soledad_store::{Database, StoreError};
//!
//! let mut db = Database::open_in_memory()?;
//! let mut doc = db.create_doc(&json!({"name": "Ann"}), None)?;
//! db.create_index("by-name", &["lower(name)"])?;
//! assert_eq!(db.get_from_index("by-name", &["a*"])?.len(), 1);
//! doc.set_value(&json!({"name": "Bob"}))?;
//! db.put_doc(&mut doc)?;
//! assert_eq!(db.get_doc(&doc.doc_id, false)?.and_then(|d| d.value().ok().flatten()),
//!            Some(json!({"name": "Bob"})));
//! # Ok::<(), StoreError>(())
//! ```

mod batch;
mod conn;
mod database;
mod document;
mod error;
mod ids;
mod index;
mod open;
mod payload;
mod position;
mod read;
mod schema;
mod size;
mod sync;
pub mod vectorclock;
mod worker;
mod write;

pub use batch::Batch;
pub use database::{Database, DocReader, OpaqueDatabase};
pub use document::Document;
pub use error::{Result, StoreError};
pub use ids::{DocId, MAX_DOC_ID_BYTES, Rev, is_valid_doc_id};
#[doc(hidden)]
pub use index::fuzz_index_expression;
pub use open::{ENCRYPTED_CACHE_KIB, KEY_BYTES, OpenOptions, PAGE_SIZE_BYTES};
pub use payload::{JsonContent, Payload};
pub use position::{Position, ReplicaUid, SaveConflict, Source, TransId};
pub use size::StoredSize;
pub use sync::{Change, ChangedDoc, Changes, MAX_TRANSACTION_ID_BYTES, PutState};
pub use vectorclock::{ClockOrdering, VectorClock};
pub use worker::{StoreWorker, WorkerCallError, WorkerStopped};
