//! The README's tutorial with both real binaries: `soledad-server user add` and
//! `serve` on loopback, two devices through `soledad`, then the server stopped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{bare, json, json_error};

/// The `soledad-server` binary of this build. `cargo test --workspace` builds it;
/// a run of this crate's tests alone builds it here first.
fn server_bin() -> PathBuf {
    let path = assert_cmd::cargo::cargo_bin("soledad-server");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--locked",
                "-p",
                "soledad-server",
                "--bin",
                "soledad-server",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building soledad-server failed");
    }
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the server when the test ends, whatever happens.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn admin(config: &Path, args: &[&str]) -> String {
    let out = Command::new(server_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "soledad-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_tutorial_runs_with_the_real_server_binary() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("soledad-server.conf");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[soledad-server]\ndata_path = {}\nusers_address = 127.0.0.1:{port}\n\
             services_address = 127.0.0.1:0\n",
            data.display()
        ),
    )
    .unwrap();
    let token = admin(&config, &["user", "add", "alice"]);
    assert!(!token.is_empty());
    let server = Serving(
        Command::new(server_bin())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cert = data.join("tls").join("cert.pem");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !cert.exists() {
        assert!(Instant::now() < deadline, "soledad-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let url = format!("https://127.0.0.1:{port}");
    let init = |device: &str| {
        let home = dir.path().join(device);
        let out = json(
            bare(&home),
            &[
                "init",
                "--uuid",
                "alice",
                "--server",
                &url,
                "--cert-file",
                cert.to_str().unwrap(),
                "--token",
                &token,
            ],
            0,
        );
        assert_eq!(out["uuid"], "alice", "{out}");
        home
    };
    let laptop = init("laptop");
    json(
        bare(&laptop),
        &["doc", "create", "--id", "ada", r#"{"name": "Ada"}"#],
        0,
    );
    assert_eq!(json(bare(&laptop), &["sync"], 0)["sent"], 1);
    // Same passphrase on a new device: the storage secret comes from the server backup.
    let phone = init("phone");
    assert_eq!(json(bare(&phone), &["sync"], 0)["received"], 1);
    let ada = json(bare(&phone), &["doc", "get", "ada"], 0);
    assert_eq!(ada["content"], serde_json::json!({"name": "Ada"}), "{ada}");

    drop(server);
    let down = json_error(bare(&phone), &["sync"], 1);
    assert!(
        down["message"].as_str().unwrap().contains("cannot reach"),
        "{down}"
    );
}
