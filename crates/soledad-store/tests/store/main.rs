//! Integration tests of soledad-store through its public API (translations of
//! u1db's test_backends / test_sync cases plus our own rules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod conflicts;
mod documents;
mod encryption;
mod indexes;
mod model;
mod opaque;
mod sync;
mod transactions;
mod util;
