//! Integration tests of soledad-crypto through its public API only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod envelope;
mod secrets;
mod stream;
mod util;
mod vectors;
