//! End-to-end tests and benchmarks of Soledad: the client library against the
//! real `soledad-server` binary on loopback. This crate has no library code;
//! it exists so that neither `soledad-client` nor `soledad-server` needs the
//! other as a dev-dependency.
//!
//! Tests (`cargo test -p soledad-e2e`):
//! - `sync`: documents, conflicts, divergence, tampering, blobs and
//!   attachments (issue 11), the incoming box (issue 12), privacy of the
//!   server's files, trust, failures and limits;
//! - `sync_crash`: a sync cut by SIGKILLing the server resumes without loss;
//! - `convergence_checker`: seeded random multi-device runs with kills;
//! - `quota_truth`: quota measured on what is stored, across restarts.
//!
//! Benchmarks (`cargo bench -p soledad-e2e --bench NAME`): `sync`, `blobs`,
//! `incoming`.
//!
//! The server runs as a child process through `soledad-testkit`, which builds
//! the binary first when it is missing or older than the server's sources.
