#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Issue 8, items 4–6, against the real `soledad-server` binary on loopback:
//! quota that measures what is stored (per-entry cost, repeated edits, the
//! same usage across a restart, tombstone purge) and memory that grows only
//! with bytes received (a 64 MiB frame header with no body).

mod edits;
mod entries;
mod frames;
mod restart;
mod util;
