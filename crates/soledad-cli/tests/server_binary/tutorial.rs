//! The README's tutorial with both real binaries: `soledad-server user add` and
//! `serve` on loopback, two devices through `soledad`, then the server stopped.

use soledad_testkit::ServerProcess;

use crate::util::{bare, json, json_error};

#[test]
fn the_tutorial_runs_with_the_real_server_binary() {
    let dir = tempfile::tempdir().unwrap();
    // `soledad-server user add alice`, then `serve` (the harness runs both).
    let server = ServerProcess::builder().user("alice").start();
    let token = server.token("alice").to_owned();
    assert!(!token.is_empty());
    let cert = server.cert();

    let url = server.url();
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

    server.kill();
    let down = json_error(bare(&phone), &["sync"], 1);
    assert!(
        down["message"].as_str().unwrap().contains("cannot reach"),
        "{down}"
    );
}
