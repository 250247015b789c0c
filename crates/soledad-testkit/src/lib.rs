//! The one way the workspace's tests run the real `soledad-server` binary:
//! [`ServerProcess`] starts it on `127.0.0.1` (two random free ports) with a
//! temporary data directory and an INI configuration file, waits until it
//! serves, registers users and service tokens through the binary's own admin
//! subcommands, and can SIGKILL and restart it on the same port and data.
//!
//! It does not depend on `soledad-server` or `soledad-client` (so any test
//! crate can use it without a dependency cycle), and it knows nothing of the
//! server's file layout beyond where the generated TLS certificate is: tests
//! that play a dishonest server use `soledad_server::testing` (feature
//! `test-hooks`).
//!
//! # Which binary
//! [`server_binary`] finds the binary of the current build (see there): an
//! explicit path ([`ServerBuilder::binary`], e.g. the server's own tests pass
//! `env!("CARGO_BIN_EXE_soledad-server")`), else `SOLEDAD_SERVER_BIN`, else the
//! target directory of the running test, which it builds first with
//! `cargo build -p soledad-server --bin soledad-server` when the binary is
//! missing or older than the server's sources. `cargo test --workspace` builds
//! it anyway; `cargo test -p <one crate>` gets it built on first use.
//!
//! ```no_run
//! use soledad_testkit::ServerProcess;
//!
//! let server = ServerProcess::builder()
//!     .option("quota_bytes", "65536")
//!     .user("alice")
//!     .service("incoming")
//!     .start();
//! let url = server.url(); // https://127.0.0.1:<port>
//! let cert = server.cert(); // trust this certificate
//! let token = server.token("alice");
//! server.kill(); // SIGKILL, nothing flushed
//! server.restart(); // same port, same data
//! # let _ = (url, cert, token);
//! ```

// A test harness: a failure to start or administer the server is a failed
// test, reported with the server's own output.
#![allow(clippy::panic, clippy::expect_used)]

mod binary;
mod process;

pub use binary::server_binary;
pub use process::{Killer, PATIENCE, ServerBuilder, ServerProcess, authorization};
