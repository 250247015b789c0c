//! The `soledad-server` binary: admin commands, configuration errors, serving
//! and graceful stop on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use soledad_server::{Config, Server};

use crate::util::{auth_header, client_for};

fn bin(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_soledad-server"));
    command
        .env_remove("SOLEDAD_SERVER_CONFIG_FILE")
        .env_remove("SOLEDAD_SERVER_DATA_PATH")
        .env_remove("HTTPS_PORT")
        .env_remove("LOCAL_SERVICES_PORT")
        .env_remove("SOLEDAD_LOG_TO_STDOUT")
        .env_remove("RUST_LOG")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home);
    command
}

fn run(home: &Path, data: &Path, args: &[&str]) -> Output {
    bin(home)
        .arg("--data-path")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test]
async fn user_commands_issue_tokens_the_server_accepts() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let added = run(home.path(), &data, &["user", "add", "alice"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let token = stdout(&added).trim().to_owned();
    assert_eq!(token.len(), 43, "256-bit base64url token");

    let again = run(home.path(), &data, &["user", "add", "alice"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let bad = run(home.path(), &data, &["user", "add", "../etc"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("invalid user id"));

    assert!(
        run(
            home.path(),
            &data,
            &["user", "add", "bob", "--expires-in-days", "3"]
        )
        .status
        .success()
    );
    let list = run(home.path(), &data, &["user", "list"]);
    let lines: Vec<String> = stdout(&list).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], "alice\tnever");
    assert!(lines[1].starts_with("bob\t") && !lines[1].ends_with("never"));

    let server = Server::start(Config::loopback(&data)).await.unwrap();
    let client = client_for(server.cert_path());
    let url = format!("https://{}/blobs/alice", server.users_addr());
    let get = |token: String| {
        client
            .get(&url)
            .header("authorization", auth_header("alice", &token))
            .send()
    };
    assert_eq!(get(token.clone()).await.unwrap().status(), StatusCode::OK);

    // Rotate while the server runs: effective at once.
    let rotated = run(home.path(), &data, &["user", "token", "alice"]);
    assert!(rotated.status.success());
    let new_token = stdout(&rotated).trim().to_owned();
    assert_ne!(new_token, token);
    assert_eq!(
        get(token.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(new_token.clone()).await.unwrap().status(),
        StatusCode::OK
    );

    assert!(
        run(home.path(), &data, &["user", "remove", "alice"])
            .status
            .success()
    );
    assert_eq!(
        get(new_token).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let missing = run(home.path(), &data, &["user", "remove", "alice"]);
    assert!(!missing.status.success());
    assert!(
        !run(home.path(), &data, &["user", "token", "alice"])
            .status
            .success()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn service_token_add_enables_incoming_delivery() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let added = run(home.path(), &data, &["service-token", "add", "incoming"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let token = stdout(&added).trim().to_owned();
    let file = std::fs::read_to_string(data.join("services.tokens")).unwrap();
    assert_eq!(file, format!("incoming:{token}\n"));
    assert!(
        !run(home.path(), &data, &["service-token", "add", "bad:name"])
            .status
            .success()
    );

    // Deliveries go to registered users only.
    assert!(
        run(home.path(), &data, &["user", "add", "alice"])
            .status
            .success()
    );

    let server = Server::start(Config::loopback(&data)).await.unwrap();
    let client = crate::util::plain_client();
    let unknown = client
        .put(format!(
            "http://{}/incoming/carol/m1",
            server.services_addr()
        ))
        .header("authorization", auth_header("incoming", &token))
        .body("mail")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let url = format!("http://{}/incoming/alice/m1", server.services_addr());
    let response = client
        .put(&url)
        .header("authorization", auth_header("incoming", &token))
        .body("mail")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[test]
fn create_userdb_makes_the_user_store() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let created = run(home.path(), &data, &["create-userdb", "user-alice"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(data.join("users/user-alice.db").is_file());
    let again = run(home.path(), &data, &["create-userdb", "user-alice"]);
    assert!(again.status.success());
    assert!(stderr(&again).contains("already exists"));
    for bad in ["alice", "user-", "user-../x"] {
        let output = run(home.path(), &data, &["create-userdb", bad]);
        assert!(!output.status.success(), "{bad}");
        assert!(stderr(&output).contains("invalid user id"), "{bad}");
    }
}

#[test]
fn version_and_help() {
    let home = tempfile::tempdir().unwrap();
    let output = bin(home.path()).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("soledad-server {}", env!("CARGO_PKG_VERSION"))
    );
    let output = bin(home.path()).arg("--help").output().unwrap();
    let help = stdout(&output);
    for command in ["serve", "user", "service-token", "create-userdb"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    let output = bin(home.path()).arg("frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn bad_configuration_names_the_option() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let conf = home.path().join("soledad-server.conf");
    let cases = [
        (
            "[soledad-server]\nconcurrent_blob_writes = lots\n",
            "concurrent_blob_writes",
        ),
        (
            "[soledad-server]\nconcurrent_blob_writes = 0\n",
            "concurrent_blob_writes",
        ),
        ("[soledad-server]\nblobs = sometimes\n", "blobs"),
        (
            "[soledad-server]\nservices_address = 0.0.0.0:2525\n",
            "services_address",
        ),
        ("[soledad-server]\ntls_cert_file = /x.pem\n", "tls_key_file"),
        ("[soledad-server]\nblob_path = /x\n", "blob_path"),
    ];
    for (text, option) in cases {
        std::fs::write(&conf, text).unwrap();
        let output = bin(home.path())
            .env("SOLEDAD_SERVER_CONFIG_FILE", &conf)
            .arg("--data-path")
            .arg(&data)
            .arg("user")
            .arg("list")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{text}");
        assert!(
            stderr(&output).contains(&format!("`{option}`")),
            "{option}: {}",
            stderr(&output)
        );
    }
    std::fs::write(
        &conf,
        "[soledad-server]\ncouch_url = http://localhost:5984\n",
    )
    .unwrap();
    let output = bin(home.path())
        .env("SOLEDAD_SERVER_CONFIG_FILE", &conf)
        .env("HTTPS_PORT", "https")
        .arg("--data-path")
        .arg(&data)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`HTTPS_PORT`"),
        "{}",
        stderr(&output)
    );
    let output = bin(home.path())
        .env(
            "SOLEDAD_SERVER_CONFIG_FILE",
            home.path().join("missing.conf"),
        )
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("missing.conf"));
}

#[tokio::test]
async fn serve_and_stop_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let conf = home.path().join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "[soledad-server]\ndata_path = {}\nusers_address = 127.0.0.1:0\n\
             services_address = 127.0.0.1:0\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = bin(home.path())
        .env("SOLEDAD_SERVER_CONFIG_FILE", &conf)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let users_addr = loop {
        let line = lines.next().expect("server exited early").unwrap();
        if let Some(addr) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("users_api="))
        {
            break addr.to_owned();
        }
    };
    let cert = data.join("tls/cert.pem");
    let client = client_for(&cert);
    let response = client
        .get(format!("https://{users_addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Wait off the runtime so the idle client connection keeps being served
    // (it must not hold the shutdown up).
    let (status, rest) = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        (status, lines.map_while(Result::ok).collect::<Vec<String>>())
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    drop(client);
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}
