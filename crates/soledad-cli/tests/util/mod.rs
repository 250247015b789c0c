//! The real `soledad-server` binary on 127.0.0.1 (random port, TLS, data in a
//! temporary directory; the workspace's harness), and the real `soledad`
//! binary pointed at it through `SOLEDAD_*` variables only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use soledad_server::testing::ServerFiles;
use soledad_testkit::ServerProcess;
use tempfile::TempDir;

pub const UUID: &str = "alice";
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The server and the temporary directory holding the devices' homes.
pub struct Env {
    server: ServerProcess,
    pub dir: TempDir,
    pub token: String,
    pub url: String,
    pub cert: PathBuf,
}

impl Env {
    /// Starts a server with one registered user, `UUID`.
    pub fn start() -> Env {
        Env::start_serving_blobs(false)
    }

    /// As [`start`](Self::start), with the blobs API served.
    pub fn start_serving_blobs(blobs: bool) -> Env {
        let server = ServerProcess::builder()
            .option("blobs", blobs)
            .user(UUID)
            .service("incoming")
            .start();
        Env {
            dir: tempfile::tempdir().unwrap(),
            token: server.token(UUID).to_owned(),
            url: server.url(),
            cert: server.cert(),
            server,
        }
    }

    /// Stops the server (SIGKILL; its port then refuses connections).
    pub fn stop(&mut self) {
        self.server.kill();
    }

    /// Seals `message` to `UUID`'s published incoming key and delivers it as
    /// `id` through the services API, as the provider's MX does.
    pub fn deliver(&self, id: &str, message: &[u8]) {
        let out = self.server.deliver(UUID, id, message);
        assert!(
            out.status.success(),
            "deliver {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A device's home directory (not created).
    pub fn home(&self, device: &str) -> PathBuf {
        self.dir.path().join(device)
    }

    /// `soledad` with everything needed to reach this server as `UUID`.
    pub fn soledad(&self, device: &str) -> Command {
        let mut cmd = bare(&self.home(device));
        cmd.env("SOLEDAD_UUID", UUID)
            .env("SOLEDAD_SERVER", &self.url)
            .env("SOLEDAD_TOKEN", &self.token)
            .env("SOLEDAD_CERT_FILE", &self.cert);
        cmd
    }

    /// `soledad init` on a new device; panics unless it succeeds.
    pub fn init(&self, device: &str) {
        self.soledad(device).arg("init").assert().success();
    }

    /// Plays a dishonest server: flips one byte in the stored envelope of every
    /// document in the user's server-side store (the server's test hooks).
    pub fn tamper_with_stored_documents(&self) -> usize {
        ServerFiles::at(self.server.data_path())
            .flip_every_envelope(UUID)
            .unwrap()
    }
}

/// `soledad` with only a home, the passphrase and the test-only fast KDF: what
/// a later command needs once `init` saved the profile.
pub fn bare(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soledad"));
    cmd.env_clear()
        .env("SOLEDAD_HOME", home)
        .env("SOLEDAD_PASSPHRASE", PASSPHRASE)
        .env("SOLEDAD_DANGER_FAST_KDF", "1")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

/// Runs `cmd` with `--json`, expects `code`, and returns stdout parsed as exactly
/// one JSON value (empty stdout is `Value::Null`).
pub fn json(mut cmd: impl BorrowMut<Command>, args: &[&str], code: i32) -> Value {
    let out = cmd.borrow_mut().arg("--json").args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "soledad {args:?}: stdout {stdout:?} stderr {stderr:?}"
    );
    if stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not one JSON value ({e}): {stdout}"))
}

/// Runs `cmd` with `--json`, expects failure with `code`, and returns the error
/// object from stderr (stdout must be empty).
pub fn json_error(mut cmd: impl BorrowMut<Command>, args: &[&str], code: i32) -> Value {
    let out = cmd.borrow_mut().arg("--json").args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "soledad {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "stdout must be empty on error");
    let value: Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("stderr is not one JSON value ({e}): {stderr}"));
    assert!(value["error"].is_string(), "{value}");
    assert!(value["message"].is_string(), "{value}");
    value
}
