//! Integration tests of the soledad-server: the real server on 127.0.0.1 port 0
//! with TLS, driven through reqwest and raw TLS/TCP streams; plus the binary's
//! admin commands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin;
mod auth;
mod blobs;
mod changes;
mod incoming;
mod info;
mod robustness;
mod shared;
mod util;
