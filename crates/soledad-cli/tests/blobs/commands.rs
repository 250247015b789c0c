//! `soledad blob …` and `soledad attachment …` (issue 11).

use crate::util::{Env, bare, json, json_error};

#[test]
fn blobs_round_trip_between_two_devices() {
    let env = Env::start_serving_blobs(true);
    env.init("a");
    env.init("b");
    let a = || bare(&env.home("a"));
    let b = || bare(&env.home("b"));
    let file = env.dir.path().join("photo.bin");
    let content: Vec<u8> = (0..200_000u32).map(|n| (n * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();

    let put = json(a(), &["blob", "put", "photo-1", file.to_str().unwrap()], 0);
    assert_eq!(put["status"], "SYNCED");
    assert_eq!(put["size"], 200_000);
    let again = json_error(a(), &["blob", "put", "photo-1", file.to_str().unwrap()], 4);
    assert_eq!(again["error"], "blob_exists");
    let private = json(
        a(),
        &[
            "blob",
            "put",
            "mine",
            file.to_str().unwrap(),
            "--local-only",
        ],
        0,
    );
    assert_eq!(private["status"], "LOCAL_ONLY");
    // Uploaded and local-only blobs are nothing to do for a sync.
    let status = json(a(), &["status"], 0);
    assert_eq!(
        status["pending_blobs"],
        serde_json::json!({"to_upload": 0, "to_download": 0, "failed": 0})
    );

    let remote = json(b(), &["blob", "list", "--remote"], 0);
    assert_eq!(remote["blobs"], serde_json::json!(["photo-1"]));
    let count = json(b(), &["blob", "list", "--remote", "--count"], 0);
    assert_eq!(count["count"], 1);
    let synced = json(b(), &["blob", "sync"], 0);
    assert_eq!(synced["downloaded"], serde_json::json!(["photo-1"]));
    let out = env.dir.path().join("copy.bin");
    let got = json(
        b(),
        &["blob", "get", "photo-1", "--output", out.to_str().unwrap()],
        0,
    );
    assert_eq!(got["size"], 200_000);
    assert_eq!(std::fs::read(&out).unwrap(), content);
    // Raw bytes on stdout without --output.
    let raw = b().args(["blob", "get", "photo-1"]).output().unwrap();
    assert!(raw.status.success());
    assert_eq!(raw.stdout, content);

    let flags = json(b(), &["blob", "flags", "photo-1", "--set", "PROCESSED"], 0);
    assert_eq!(flags["flags"], serde_json::json!(["PROCESSED"]));
    let bad = json_error(b(), &["blob", "flags", "photo-1", "--set", "DONE"], 2);
    assert_eq!(bad["error"], "invalid_flags");

    let deleted = json(a(), &["blob", "delete", "photo-1"], 0);
    assert_eq!(deleted["deleted"], true);
    let missing = json_error(a(), &["blob", "get", "photo-1"], 3);
    assert_eq!(missing["error"], "blob_not_found");
    let local = json(a(), &["blob", "list"], 0);
    assert_eq!(
        local["blobs"],
        serde_json::json!([{"blob_id": "mine", "status": "LOCAL_ONLY"}])
    );
}

#[test]
fn attachments_are_remote_on_another_device_until_fetched() {
    let env = Env::start_serving_blobs(true);
    env.init("a");
    env.init("b");
    let a = || bare(&env.home("a"));
    let b = || bare(&env.home("b"));
    let file = env.dir.path().join("report.pdf");
    std::fs::write(&file, b"%PDF-1.7 not really".repeat(1000)).unwrap();
    json(
        a(),
        &["doc", "create", "--id", "report", "{\"title\": \"Q3\"}"],
        0,
    );
    let put = json(
        a(),
        &["attachment", "put", "report", file.to_str().unwrap()],
        0,
    );
    assert_eq!(put["state"], "SYNCED");
    json(a(), &["sync"], 0);
    json(b(), &["sync"], 0);
    let state = json(b(), &["attachment", "state", "report"], 0);
    assert_eq!(state["state"], "REMOTE");
    let out = env.dir.path().join("fetched.pdf");
    json(
        b(),
        &[
            "attachment",
            "get",
            "report",
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());
    let state = json(b(), &["attachment", "state", "report"], 0);
    assert_eq!(state["state"], "SYNCED");
    json(b(), &["attachment", "delete", "report"], 0);
    let state = json(b(), &["attachment", "state", "report"], 0);
    assert_eq!(state["state"], "NONE");
    let none = json_error(b(), &["attachment", "get", "report"], 3);
    assert_eq!(none["error"], "blob_not_found");
}
