//! Attack: Alice's token on paths that spell Bob's owner segment differently
//! (percent-encoded, double-encoded, other case, dot segments, trailing and
//! empty segments), on every route. Each is refused (403/404), anonymous gets
//! 401, and Bob's data is untouched: no blob written, changed or deleted, no
//! sync position recorded.

use serde_json::Value;

use crate::util::{BOB, Server};

/// Spellings of Bob's uuid in an owner segment that must not reach his data.
fn spellings(segment: &str) -> Vec<String> {
    let all: String = segment.bytes().map(|b| format!("%{b:02X}")).collect();
    let first = segment
        .bytes()
        .next()
        .map(|b| format!("%{b:02x}"))
        .unwrap_or_default();
    vec![
        all.clone(),
        format!("{first}{}", &segment[1..]),
        all.replace('%', "%25"),
        segment.to_uppercase(),
        format!(
            "{}%{:02X}",
            &segment[..segment.len() - 1],
            segment.as_bytes()[segment.len() - 1]
        ),
    ]
}

/// Every route naming a user, with Bob's segment spelled `who`:
/// (method, path, body).
fn routes(who: &str, db: &str) -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("GET", format!("/blobs/{who}"), ""),
        ("GET", format!("/blobs/{who}?only_count=true"), ""),
        ("GET", format!("/blobs/{who}/b1"), ""),
        ("GET", format!("/blobs/{who}/b1?only_flags=true"), ""),
        ("PUT", format!("/blobs/{who}/b2"), "evil"),
        ("POST", format!("/blobs/{who}/b1"), "[\"PROCESSED\"]"),
        ("DELETE", format!("/blobs/{who}/b1"), ""),
        ("GET", format!("/usage/{who}"), ""),
        ("GET", format!("/{db}/sync-from/r1"), ""),
        (
            "PUT",
            format!("/{db}/sync-from/r1"),
            "{\"generation\": 7, \"transaction_id\": \"T-evil\"}",
        ),
        ("POST", format!("/{db}/sync-from/r1"), "{}"),
    ]
}

/// Dot-segment, trailing-slash and empty-segment shapes of Bob's real paths.
fn shapes() -> Vec<(&'static str, String, &'static str)> {
    let mut out = Vec::new();
    for (method, path, body) in routes(BOB, &format!("user-{BOB}")) {
        let path = path.split('?').next().unwrap_or_default().to_owned();
        out.push((method, format!("/blobs/..{path}"), body));
        out.push((method, format!("/.{path}"), body));
        out.push((method, format!("{path}/"), body));
        out.push((method, format!("/{path}"), body));
        out.push((method, path.replacen('/', "/./", 2), body));
        out.push((
            method,
            path.replace(BOB, &format!("{}/../{BOB}", crate::util::ALICE)),
            body,
        ));
    }
    out
}

async fn bob_state(t: &Server) -> (Vec<String>, String, Value, Value, Value) {
    let client = t.client();
    let get = |path: String| {
        client
            .get(t.url(&path))
            .header("authorization", &t.bob.header)
            .send()
    };
    let list: Vec<String> = get(format!("/blobs/{BOB}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = get(format!("/blobs/{BOB}/b1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let flags: Value = get(format!("/blobs/{BOB}/b1?only_flags=true"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usage: Value = get(format!("/usage/{BOB}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sync: Value = get(format!("/user-{BOB}/sync-from/r1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (list, content, flags, usage, sync)
}

#[tokio::test]
async fn encoded_owner_segments_on_every_route_are_refused_and_touch_nothing() {
    let t = Server::start("").await;
    let response = t
        .client()
        .put(t.url(&format!("/blobs/{BOB}/b1")))
        .header("authorization", &t.bob.header)
        .body("bob's data")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let before = bob_state(&t).await;
    assert_eq!(before.0, vec!["b1".to_owned()]);
    assert_eq!(before.4["source_replica_generation"], 0);

    let mut attacks = Vec::new();
    for who in spellings(BOB) {
        attacks.extend(routes(&who, &format!("user-{who}")));
    }
    for db in spellings(&format!("user-{BOB}")) {
        attacks.extend(
            routes(BOB, &db)
                .into_iter()
                .filter(|(_, p, _)| p.contains("sync-from")),
        );
    }
    for db in [
        format!("user%2D{BOB}"),
        format!("%75ser-{BOB}"),
        format!("%2575ser-{BOB}"),
        format!("USER-{BOB}"),
    ] {
        attacks.extend(
            routes(BOB, &db)
                .into_iter()
                .filter(|(_, p, _)| p.contains("sync-from")),
        );
    }
    attacks.extend(shapes());
    assert!(attacks.len() >= 140, "{}", attacks.len());
    for (method, path, body) in &attacks {
        let (status, text) = t.raw(method, path, Some(&t.alice.header), body).await;
        assert!(
            status == 403 || status == 404,
            "alice {method} {path} -> {status} {text}"
        );
        let (status, _) = t.raw(method, path, None, body).await;
        assert_eq!(status, 401, "anonymous {method} {path}");
    }
    // Bob's data: same blobs, content, flags, usage; no position recorded.
    assert_eq!(bob_state(&t).await, before);
    let blobs_of_bob: Vec<_> = walk(&t.data().join("blobs").join(BOB));
    assert_eq!(blobs_of_bob.iter().filter(|p| p.ends_with("b2")).count(), 0);
    // The exact requests.
    for path in [
        format!("/user%2D{BOB}/sync-from/r1"),
        format!("/%75ser-{BOB}/sync-from/r1"),
    ] {
        assert_eq!(t.raw("GET", &path, Some(&t.alice.header), "").await.0, 403);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn the_owner_may_spell_their_own_segment_encoded() {
    let t = Server::start("").await;
    let alice = crate::util::ALICE;
    let encoded: String = alice.bytes().map(|b| format!("%{b:02x}")).collect();
    let (status, _) = t
        .raw(
            "PUT",
            &format!("/blobs/{encoded}/mine"),
            Some(&t.alice.header),
            "12345",
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = t
        .raw(
            "GET",
            &format!("/blobs/{alice}/mine"),
            Some(&t.alice.header),
            "",
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "12345"));
}
