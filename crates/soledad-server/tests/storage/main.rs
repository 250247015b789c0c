//! The storage seam: each storage trait's conformance suite
//! (`soledad_server::conformance`) on the embedded implementation and on a
//! small in-memory one, and a server started on the in-memory ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod injection;
mod memory;
mod suites;
