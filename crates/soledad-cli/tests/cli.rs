//! The real `soledad` binary against a real server on loopback: every command,
//! the `--json` shapes, the exit codes of DESIGN §8 and their error paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "blobs/commands.rs"]
mod blob_commands;
#[path = "server_binary/tutorial.rs"]
mod server_binary;
mod util;

use std::io::Read as _;

use predicates::prelude::*;
use serde_json::json;

use util::{Env, PASSPHRASE, UUID, bare, json, json_error};

#[test]
fn init_saves_a_profile_so_later_commands_need_no_flags() {
    let env = Env::start();
    let out = json(env.soledad("a"), &["init"], 0);
    assert_eq!(out["uuid"], UUID);
    assert_eq!(out["token_saved"], true);
    assert_eq!(out["secrets_existed"], false);

    let profile = std::fs::read_to_string(env.home("a").join("profile.json")).unwrap();
    assert!(profile.contains(&env.url), "{profile}");
    assert!(
        !profile.contains(PASSPHRASE),
        "the passphrase must never be saved"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.home("a").join("profile.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "profile holds the token: owner only");
    }

    // Only the home and the passphrase from now on.
    let created = json(
        bare(&env.home("a")),
        &["doc", "create", "--id", "x", "{\"n\":1}"],
        0,
    );
    assert_eq!(created["doc_id"], "x");
    let synced = json(bare(&env.home("a")), &["sync"], 0);
    assert_eq!(synced["sent"], 1);
    assert_eq!(synced["converged"], true);
}

#[test]
fn init_without_saving_the_token_needs_it_each_time() {
    let env = Env::start();
    env.soledad("a")
        .args(["init", "--no-save-token"])
        .assert()
        .success();
    let profile = std::fs::read_to_string(env.home("a").join("profile.json")).unwrap();
    assert!(!profile.contains(&env.token));
    let err = json_error(bare(&env.home("a")), &["sync"], 2);
    assert_eq!(err["error"], "usage");
    assert!(err["message"].as_str().unwrap().contains("token"), "{err}");
    bare(&env.home("a"))
        .env("SOLEDAD_TOKEN", &env.token)
        .arg("sync")
        .assert()
        .success();
}

#[test]
fn documents_round_trip_with_their_json_shapes() {
    let env = Env::start();
    env.init("a");
    let a = || bare(&env.home("a"));

    let created = json(
        a(),
        &["doc", "create", "--id", "ada", r#"{"name": "Ada"}"#],
        0,
    );
    assert_eq!(created["doc_id"], "ada");
    let rev1 = created["rev"].as_str().unwrap().to_owned();

    // From stdin, with a generated id.
    let out = a()
        .args(["--json", "doc", "create"])
        .write_stdin(r#"{"name": "Grace"}"#)
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!generated["doc_id"].as_str().unwrap().is_empty());

    let got = json(a(), &["doc", "get", "ada"], 0);
    assert_eq!(
        got,
        json!({"doc_id": "ada", "rev": rev1, "content": {"name": "Ada"},
               "deleted": false, "has_conflicts": false})
    );

    let put = json(a(), &["doc", "put", "ada", r#"{"name": "Ada L."}"#], 0);
    let rev2 = put["rev"].as_str().unwrap().to_owned();
    assert_ne!(rev1, rev2);
    assert_eq!(
        json(a(), &["doc", "get", "ada"], 0)["content"]["name"],
        "Ada L."
    );

    let list = json(a(), &["doc", "list"], 0);
    assert_eq!(list["docs"].as_array().unwrap().len(), 2);
    assert!(list["generation"].as_u64().unwrap() >= 3);

    // Human output: id and revision, then the JSON as stored.
    a().args(["doc", "get", "ada"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&rev2))
        .stdout(predicate::str::contains(r#"{"name": "Ada L."}"#));

    let deleted = json(a(), &["doc", "delete", "ada"], 0);
    assert_eq!(deleted["doc_id"], "ada");
    let tomb = json(a(), &["doc", "get", "ada", "--include-deleted"], 0);
    assert_eq!(tomb["deleted"], true);
    assert_eq!(tomb["content"], serde_json::Value::Null);
    let list = json(a(), &["doc", "list"], 0);
    assert_eq!(list["docs"].as_array().unwrap().len(), 1);
    let list = json(a(), &["doc", "list", "--include-deleted"], 0);
    assert_eq!(list["docs"].as_array().unwrap().len(), 2);
}

#[test]
fn a_missing_document_exits_3() {
    let env = Env::start();
    env.init("a");
    let err = json_error(bare(&env.home("a")), &["doc", "get", "nobody"], 3);
    assert_eq!(err["error"], "document_does_not_exist");
    let err = json_error(bare(&env.home("a")), &["doc", "delete", "nobody"], 3);
    assert_eq!(err["error"], "document_does_not_exist");
    // Human mode: a one-line message on stderr, nothing on stdout.
    bare(&env.home("a"))
        .args(["doc", "get", "nobody"])
        .assert()
        .code(3)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("\"nobody\" does not exist"));
}

#[test]
fn a_stale_revision_is_a_conflict_exit_4() {
    let env = Env::start();
    env.init("a");
    let a = || bare(&env.home("a"));
    let rev1 = json(a(), &["doc", "create", "--id", "d", "{\"v\":1}"], 0)["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    json(a(), &["doc", "put", "d", "--rev", &rev1, "{\"v\":2}"], 0);
    let err = json_error(a(), &["doc", "put", "d", "--rev", &rev1, "{\"v\":3}"], 4);
    assert_eq!(err["error"], "revision_conflict");
    let err = json_error(a(), &["doc", "delete", "d", "--rev", &rev1], 4);
    assert_eq!(err["error"], "revision_conflict");
    // Creating an id that exists is a conflict too.
    let err = json_error(a(), &["doc", "create", "--id", "d", "{}"], 4);
    assert_eq!(err["error"], "revision_conflict");
    assert_eq!(json(a(), &["doc", "get", "d"], 0)["content"]["v"], 2);
}

#[test]
fn invalid_input_is_a_usage_error_exit_2() {
    let env = Env::start();
    env.init("a");
    let err = json_error(bare(&env.home("a")), &["doc", "create", "[1, 2]"], 2);
    assert_eq!(err["error"], "invalid_content");
    let err = json_error(bare(&env.home("a")), &["doc", "create", "{nope"], 2);
    assert_eq!(err["error"], "invalid_json");
    let err = json_error(
        bare(&env.home("a")),
        &["doc", "create", "--id", "a/b", "{}"],
        2,
    );
    assert_eq!(err["error"], "invalid_doc_id");
    // Ids and revisions are parsed where they enter, reads included: a bad id
    // is a usage error, not "not found".
    let err = json_error(bare(&env.home("a")), &["doc", "get", "a/b"], 2);
    assert_eq!(err["error"], "invalid_doc_id");
    json(
        bare(&env.home("a")),
        &["doc", "create", "--id", "d", "{}"],
        0,
    );
    let err = json_error(
        bare(&env.home("a")),
        &["doc", "delete", "d", "--rev", "not a rev"],
        2,
    );
    assert_eq!(err["error"], "invalid_revision");
    // Nothing was deleted.
    let doc = json(bare(&env.home("a")), &["doc", "get", "d"], 0);
    assert_eq!(doc["doc_id"], "d");
    assert!(doc["rev"].as_str().is_some_and(|rev| rev.ends_with(":1")));
}

#[test]
fn indexes_answer_queries() {
    let env = Env::start();
    env.init("a");
    let a = || bare(&env.home("a"));
    for (id, name) in [("1", "Ada"), ("2", "Alan"), ("3", "Grace")] {
        json(
            a(),
            &[
                "doc",
                "create",
                "--id",
                id,
                &format!(r#"{{"name": "{name}"}}"#),
            ],
            0,
        );
    }
    let created = json(a(), &["index", "create", "by-name", "lower(name)"], 0);
    assert_eq!(
        created,
        json!({"name": "by-name", "expressions": ["lower(name)"]})
    );
    let list = json(a(), &["index", "list"], 0);
    assert_eq!(
        list,
        json!({"indexes": [{"name": "by-name", "expressions": ["lower(name)"]}]})
    );

    let ids = |v: serde_json::Value| -> Vec<String> {
        v["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["doc_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(json(a(), &["index", "get", "by-name", "a*"], 0)),
        ["1", "2"]
    );
    assert_eq!(
        ids(json(a(), &["index", "get", "by-name", "grace"], 0)),
        ["3"]
    );
    assert_eq!(
        ids(json(
            a(),
            &["index", "range", "by-name", "--start", "alan", "--end", "h"],
            0
        )),
        ["2", "3"]
    );
    assert_eq!(
        ids(json(a(), &["index", "range", "by-name", "--end", "ada"], 0)),
        ["1"]
    );
    assert_eq!(
        json(a(), &["index", "keys", "by-name"], 0),
        json!({"keys": [["ada"], ["alan"], ["grace"]]})
    );
    assert_eq!(
        json(a(), &["index", "count", "by-name", "a*"], 0),
        json!({"count": 2})
    );
    a().args(["index", "count", "by-name", "a*"])
        .assert()
        .success()
        .stdout("2\n");

    let err = json_error(a(), &["index", "get", "by-name", "a", "b"], 2);
    assert_eq!(err["error"], "invalid_value_for_index");
    json(a(), &["index", "delete", "by-name"], 0);
    let err = json_error(a(), &["index", "get", "by-name", "a*"], 3);
    assert_eq!(err["error"], "index_does_not_exist");
    assert_eq!(json(a(), &["index", "list"], 0), json!({"indexes": []}));
}

#[test]
fn two_devices_sync_conflict_and_resolve() {
    let env = Env::start();
    env.init("a");
    // Same passphrase on a second device: bootstraps from the server backup.
    let b_init = json(env.soledad("b"), &["init"], 0);
    assert_eq!(b_init["secrets_existed"], false);
    let a = || bare(&env.home("a"));
    let b = || bare(&env.home("b"));

    json(
        a(),
        &["doc", "create", "--id", "grace", r#"{"email": "g@a"}"#],
        0,
    );
    assert_eq!(json(a(), &["sync"], 0)["sent"], 1);
    let down = json(b(), &["sync"], 0);
    assert_eq!(down["received"], 1);
    assert_eq!(
        json(b(), &["doc", "get", "grace"], 0)["content"]["email"],
        "g@a"
    );

    json(a(), &["doc", "put", "grace", r#"{"email": "from-a"}"#], 0);
    json(b(), &["doc", "put", "grace", r#"{"email": "from-b"}"#], 0);
    json(a(), &["sync"], 0);
    let report = json(b(), &["sync"], 0);
    assert_eq!(report["conflicts"], 1, "{report}");

    let status = json(b(), &["status"], 0);
    assert_eq!(status["conflicted"], json!(["grace"]));
    let versions = json(b(), &["doc", "conflicts", "grace"], 0);
    assert_eq!(versions["docs"].as_array().unwrap().len(), 2);
    // A conflicted document refuses a plain update.
    let err = json_error(b(), &["doc", "put", "grace", r#"{"email": "x"}"#], 4);
    assert_eq!(err["error"], "conflicted_doc");

    let resolved = json(
        b(),
        &["doc", "resolve", "grace", r#"{"email": "merged"}"#],
        0,
    );
    assert_eq!(resolved["resolved"], true);
    assert_eq!(resolved["superseded"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(b(), &["doc", "conflicts", "grace"], 0),
        json!({"docs": []})
    );
    json(b(), &["sync"], 0);
    json(a(), &["sync"], 0);
    let on_a = json(a(), &["doc", "get", "grace"], 0);
    assert_eq!(on_a["content"]["email"], "merged");
    assert_eq!(on_a["has_conflicts"], false);
    let again = json(b(), &["doc", "resolve", "grace"], 0);
    assert_eq!(again["resolved"], false);
}

#[test]
fn status_reports_generation_and_last_sync() {
    let env = Env::start();
    env.init("a");
    let a = || bare(&env.home("a"));
    let before = json(a(), &["status"], 0);
    assert_eq!(before["uuid"], UUID);
    assert_eq!(before["generation"], 0);
    assert_eq!(before["last_sync"], serde_json::Value::Null);
    json(a(), &["doc", "create", "{}"], 0);
    json(a(), &["index", "create", "i", "x"], 0);
    json(a(), &["sync"], 0);
    let after = json(a(), &["status"], 0);
    assert_eq!(after["generation"], 1);
    assert_eq!(after["documents"], 1);
    assert_eq!(after["indexes"], json!(["i"]));
    assert_eq!(after["server"], env.url.as_str());
    assert!(after["last_sync"]["at_unix"].as_u64().unwrap() > 0);
    a().arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("generation  1"));
}

#[test]
fn a_wrong_passphrase_exits_5() {
    let env = Env::start();
    env.init("a");
    let err = json_error(
        bare(&env.home("a")).env("SOLEDAD_PASSPHRASE", "wrong"),
        &["doc", "list"],
        5,
    );
    assert_eq!(err["error"], "wrong_passphrase");
    // From a file as well; the first line counts.
    let file = env.dir.path().join("pass.txt");
    std::fs::write(&file, "wrong\nignored\n").unwrap();
    let file = file.to_str().unwrap();
    json_error(
        bare(&env.home("a")),
        &["--passphrase-file", file, "doc", "list"],
        5,
    );
    // The file wins over the variable.
    let good = env.dir.path().join("good.txt");
    std::fs::write(&good, format!("{PASSPHRASE}\n")).unwrap();
    json(
        bare(&env.home("a")).env("SOLEDAD_PASSPHRASE", "wrong"),
        &["--passphrase-file", good.to_str().unwrap(), "doc", "list"],
        0,
    );
    // A second device with another passphrase finds no backup for it once the
    // account has data on the server (before that it would be a new account).
    json(bare(&env.home("a")), &["doc", "create", "{}"], 0);
    json(bare(&env.home("a")), &["sync"], 0);
    let err = json_error(
        env.soledad("b").env("SOLEDAD_PASSPHRASE", "wrong"),
        &["init"],
        5,
    );
    assert_eq!(err["error"], "backup_not_found");
}

#[test]
fn a_bad_token_exits_5() {
    let env = Env::start();
    env.init("a");
    // The flag (or variable) overrides the token saved in the profile.
    let err = json_error(bare(&env.home("a")), &["--token", "not-a-token", "sync"], 5);
    assert_eq!(err["error"], "unauthorized");
    bare(&env.home("a"))
        .env("SOLEDAD_TOKEN", "not-a-token")
        .arg("sync")
        .assert()
        .code(5)
        .stderr(predicate::str::contains("authentication refused"));
}

#[test]
fn tampered_server_data_exits_6() {
    let env = Env::start();
    env.init("a");
    env.init("b");
    json(
        bare(&env.home("a")),
        &["doc", "create", "--id", "x", "{\"secret\": 1}"],
        0,
    );
    json(bare(&env.home("a")), &["sync"], 0);
    assert_eq!(env.tamper_with_stored_documents(), 1);
    let err = json_error(bare(&env.home("b")), &["sync"], 6);
    assert_eq!(err["error"], "integrity");
    json_error(bare(&env.home("b")), &["doc", "get", "x"], 3);
}

#[test]
fn bad_usage_exits_2() {
    let env = Env::start();
    let home = env.home("a");
    bare(&home)
        .arg("frobnicate")
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty());
    bare(&home).args(["doc", "get"]).assert().code(2);
    let err = json_error(bare(&home), &["index", "create", "only-a-name"], 2);
    assert_eq!(err["error"], "usage");
    // No account in this home yet.
    let err = json_error(bare(&home), &["doc", "list"], 2);
    assert!(
        err["message"].as_str().unwrap().contains("soledad init"),
        "{err}"
    );
    let err = json_error(bare(&home).env("SOLEDAD_UUID", "../etc"), &["init"], 2);
    assert_eq!(err["error"], "usage");
    // SOLEDAD_JSON works like --json, for usage errors too.
    let out = bare(&home)
        .env("SOLEDAD_JSON", "1")
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "usage");
}

#[test]
fn server_down_exits_1_with_a_clear_message() {
    let mut env = Env::start();
    env.init("a");
    env.stop();
    let err = json_error(bare(&env.home("a")), &["sync"], 1);
    assert_eq!(err["error"], "network");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("server"), "{message}");
    bare(&env.home("a"))
        .arg("sync")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error:"))
        .stderr(predicate::str::contains("cannot reach the server: "));
    // Local commands still work without the server.
    json(bare(&env.home("a")), &["doc", "list"], 0);
}

#[test]
fn passphrase_change_locks_out_the_old_one() {
    let env = Env::start();
    env.init("a");
    let out = json(
        bare(&env.home("a")).env("SOLEDAD_NEW_PASSPHRASE", "new secret words"),
        &["passphrase", "change"],
        0,
    );
    assert_eq!(out["changed"], true);
    json_error(bare(&env.home("a")), &["doc", "list"], 5);
    json(
        bare(&env.home("a")).env("SOLEDAD_PASSPHRASE", "new secret words"),
        &["doc", "list"],
        0,
    );
    // The server backup moved too: a new device bootstraps with the new one.
    json(
        env.soledad("b")
            .env("SOLEDAD_PASSPHRASE", "new secret words"),
        &["init"],
        0,
    );
}

#[test]
fn a_recovery_code_sets_up_a_new_device_with_a_new_passphrase() {
    let env = Env::start();
    env.init("a");
    json(
        bare(&env.home("a")),
        &["doc", "create", "--id", "kept", "{}"],
        0,
    );
    json(bare(&env.home("a")), &["sync"], 0);
    let code = json(bare(&env.home("a")), &["recovery-code", "create"], 0)["recovery_code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(code.len() > 20);

    let recover = |code: &str| {
        let mut cmd = env.soledad("b");
        cmd.env_remove("SOLEDAD_PASSPHRASE")
            .env("SOLEDAD_RECOVERY_CODE", code)
            .env("SOLEDAD_NEW_PASSPHRASE", "fresh passphrase");
        cmd
    };
    // A typo is caught by the code's checksum; nothing is written.
    let mut typo = code.clone();
    let replaced = if typo.ends_with('A') { "B" } else { "A" };
    typo.replace_range(typo.len() - 1.., replaced);
    let err = json_error(recover(&typo), &["recover"], 2);
    assert_eq!(err["error"], "invalid_recovery_code");

    let out = json(recover(&code), &["recover"], 0);
    assert_eq!(out["recovered"], true);
    let b = || {
        let mut cmd = bare(&env.home("b"));
        cmd.env("SOLEDAD_PASSPHRASE", "fresh passphrase");
        cmd
    };
    json(b(), &["sync"], 0);
    json(b(), &["doc", "get", "kept"], 0);
    // Recovering into a home that has secrets is refused.
    json_error(recover(&code), &["recover"], 2);
}

#[test]
fn demo_runs_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bare(tmp.path())
        .env("TMPDIR", tmp.path())
        .arg("demo")
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("index query"), "{stdout}");
    assert!(stdout.contains("1 conflict(s)"), "{stdout}");
    assert!(stdout.contains("both devices agree"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no colour when piped");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "demo left files behind: {left:?}");

    let steps = json(bare(tmp.path()).env("TMPDIR", tmp.path()), &["demo"], 0);
    assert_eq!(steps["ok"], true);
    assert!(steps["steps"].as_array().unwrap().len() >= 10);
}

#[test]
fn every_command_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["init"],
        &["doc"],
        &["doc", "create"],
        &["doc", "get"],
        &["doc", "put"],
        &["doc", "delete"],
        &["doc", "list"],
        &["doc", "conflicts"],
        &["doc", "resolve"],
        &["index"],
        &["index", "create"],
        &["index", "list"],
        &["index", "delete"],
        &["index", "get"],
        &["index", "range"],
        &["index", "keys"],
        &["index", "count"],
        &["sync"],
        &["status"],
        &["passphrase"],
        &["passphrase", "change"],
        &["recovery-code"],
        &["recovery-code", "create"],
        &["recover"],
        &["demo"],
        &["completions"],
        &["man"],
        &["blob"],
        &["blob", "put"],
        &["blob", "get"],
        &["blob", "delete"],
        &["blob", "flags"],
        &["blob", "list"],
        &["blob", "sync"],
        &["attachment"],
        &["attachment", "put"],
        &["attachment", "get"],
        &["attachment", "delete"],
        &["attachment", "state"],
        &["incoming"],
        &["incoming", "publish-key"],
        &["incoming", "process"],
    ];
    for command in commands {
        let out = bare(std::path::Path::new("/nonexistent"))
            .args(*command)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{command:?}");
        assert!(
            help.contains("Example"),
            "no example in help of {command:?}:\n{help}"
        );
        assert!(
            !help.contains('\u{1b}'),
            "colour in piped help of {command:?}"
        );
    }
}

#[test]
fn incoming_process_turns_delivered_mail_into_documents() {
    let env = Env::start_serving_blobs(true);
    env.init("a");
    let published = json(env.soledad("a"), &["incoming", "publish-key"], 0);
    assert!(
        published["public_key"]
            .as_str()
            .unwrap()
            .starts_with("age1")
    );
    env.deliver(
        "m1",
        b"From: bob@example.org\r\nSubject: lunch?\r\nDate: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\nat noon",
    );
    env.deliver("big", &[b'x'; 50_000]);
    let report = json(
        env.soledad("a"),
        &["incoming", "process", "--size-limit", "10000"],
        0,
    );
    assert_eq!(report["processed"], json!(["m1"]));
    assert_eq!(report["skipped_oversized"], json!(["big"]));
    let doc = json(env.soledad("a"), &["doc", "get", "incoming-m1-0"], 0);
    assert_eq!(doc["content"]["type"], "mail");
    assert_eq!(doc["content"]["subject"], "lunch?");
    assert_eq!(doc["content"]["from"], "bob@example.org");
    // Nothing left to do; a second run processes nothing.
    let again = json(env.soledad("a"), &["incoming", "process"], 0);
    assert_eq!(again["processed"], json!([]));
}

#[test]
fn completions_and_man_page_are_generated() {
    let home = std::path::Path::new("/nonexistent");
    bare(home)
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_soledad()"))
        .stdout(predicate::str::contains("recovery-code"));
    bare(home)
        .args(["completions", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::contains("#compdef soledad"));
    bare(home)
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH soledad"));
    bare(home).args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_soledad"))
        .arg("man")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the man page is written.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn sync_live_prints_events_as_json_lines_until_its_time_is_up() {
    let env = Env::start();
    env.init("a");
    json(env.soledad("b"), &["init"], 0);
    let a = || bare(&env.home("a"));
    let b_home = env.home("b");
    let out = std::thread::scope(|scope| {
        let live = scope.spawn(|| {
            bare(&b_home)
                .args(["--json", "sync", "--live", "--for-secs", "6"])
                .output()
                .unwrap()
        });
        // Written and uploaded on A while B is live: B gets it by itself.
        json(
            a(),
            &["doc", "create", "--id", "live-doc", r#"{"n": 1}"#],
            0,
        );
        json(a(), &["sync"], 0);
        live.join().unwrap()
    });
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout} {:?}", out.stderr);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(events.iter().any(|e| e["event"] == "connected"), "{stdout}");
    assert!(
        events.iter().any(|e| e["event"] == "documents_changed"
            && e["doc_ids"]
                .as_array()
                .unwrap()
                .contains(&json!("live-doc"))),
        "{stdout}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["events"].as_u64().unwrap() + 1, events.len() as u64);
    assert_eq!(
        json(bare(&b_home), &["doc", "get", "live-doc"], 0)["content"]["n"],
        1
    );
    // --for-secs needs --live.
    bare(&b_home)
        .args(["sync", "--for-secs", "1"])
        .assert()
        .code(2);
}
