#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! End-to-end: the real `soledad-server` binary on loopback (soledad-testkit),
//! real clients in temp dirs. Tests configure the server through INI options
//! (`Env::start_with`) and play a dishonest server through the server's test
//! hooks (`soledad_server::testing`, `Env::files`).

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
mod live;
mod privacy;
mod secrets;
mod tampering;
mod trust;
mod util;
