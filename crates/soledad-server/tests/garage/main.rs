//! Every storage trait's conformance suite on the Garage backend, against a
//! live 3-node cluster (see `cluster.rs` for where it comes from and how to
//! skip these tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod cluster;
mod cut;
mod notifier;
mod quota;
mod suites;
mod tombstones;
