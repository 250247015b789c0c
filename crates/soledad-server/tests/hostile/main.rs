//! Hostile tests (issue 8): the real `soledad-server` binary on loopback,
//! attacked the way an ordinary account holder (or anyone on the network)
//! would: encoded owner segments, stalled bodies, idle connections, other
//! users' shared documents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod authz;
mod idle;
mod shared;
mod slow;
mod util;
