#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! End-to-end document sync: a real server on loopback, real clients in temp dirs.

mod attachments;
mod batches;
mod blobs;
mod conflicts;
mod convergence;
mod divergence;
mod failures;
mod incoming;
mod lifecycle;
mod limits;
mod privacy;
mod secrets;
mod tampering;
mod trust;
mod util;
