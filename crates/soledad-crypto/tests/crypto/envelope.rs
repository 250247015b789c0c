//! Document envelope: round trips, binding to id and revision, tamper rejection.

use proptest::prelude::*;
use soledad_crypto::{Error, StorageSecret, SyncKeys, padme};

fn key() -> soledad_crypto::DocKey {
    StorageSecret::from_bytes([42; 64]).doc_key()
}

#[test]
fn round_trip_keeps_json_text_exactly() {
    let k = key();
    for json in [
        "{}",
        r#"{ "b":1,  "a" : [true,null] }"#,
        "{\"k\": \"\u{2603}\"}",
    ] {
        let sealed = k.seal("D-1", "r:1", json).unwrap();
        assert_eq!(k.open("D-1", "r:1", &sealed).unwrap(), json);
    }
}

#[test]
fn two_seals_differ_but_both_open() {
    let k = key();
    let a = k.seal("D-1", "r:1", "{}").unwrap();
    let b = k.seal("D-1", "r:1", "{}").unwrap();
    assert_ne!(a, b, "nonces must be random");
    assert_eq!(k.open("D-1", "r:1", &b).unwrap(), "{}");
}

#[test]
fn size_is_padded_to_padme_bucket() {
    let k = key();
    let json = format!("{{\"x\": \"{}\"}}", "a".repeat(117)); // 126 bytes + 4 = 130
    let sealed = k.seal("D-1", "r:1", &json).unwrap();
    assert_eq!(sealed.len() as u64, 3 + 12 + padme(130) + 16);
    // Two documents in the same bucket have the same envelope length.
    let shorter = format!("{{\"x\": \"{}\"}}", "a".repeat(116));
    assert_eq!(k.seal("D-1", "r:1", &shorter).unwrap().len(), sealed.len());
}

#[test]
fn another_key_cannot_open() {
    let sealed = key().seal("D-1", "r:1", "{}").unwrap();
    let other = StorageSecret::from_bytes([43; 64]).doc_key();
    assert!(matches!(
        other.open("D-1", "r:1", &sealed),
        Err(Error::Integrity)
    ));
}

#[test]
fn server_ids_hide_and_separate_doc_ids() {
    let ids = StorageSecret::from_bytes([1; 64]).id_key();
    let a = ids.server_doc_id("D-1");
    assert_eq!(a.len(), 43);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_ne!(a, ids.server_doc_id("D-2"));
    assert_ne!(
        a,
        StorageSecret::from_bytes([2; 64])
            .id_key()
            .server_doc_id("D-1")
    );
    assert!(!a.contains("D-1"));
}

fn sync_keys() -> SyncKeys {
    SyncKeys::new(&StorageSecret::from_bytes([42; 64]))
}

#[test]
fn server_docs_carry_the_real_id_and_tombstones() {
    let k = sync_keys();
    let hidden = k.hidden_id("D-1");
    assert_eq!(
        hidden,
        StorageSecret::from_bytes([42; 64])
            .id_key()
            .server_doc_id("D-1")
    );
    let live = k
        .seal_for_server("D-1", "r:1", Some(r#"{"a": 1}"#))
        .unwrap();
    assert_eq!(
        k.open_from_server(&hidden, "r:1", &live).unwrap(),
        ("D-1".to_owned(), Some(r#"{"a": 1}"#.to_owned()))
    );
    let tomb = k.seal_for_server("D-1", "r:2", None).unwrap();
    assert_eq!(
        k.open_from_server(&hidden, "r:2", &tomb).unwrap(),
        ("D-1".to_owned(), None)
    );
    // The payload never contains the plaintext id.
    assert!(!live.windows(3).any(|w| w == b"D-1"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bit_flip_is_rejected(content in "[ -~]{0,300}", pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = key();
        let json = format!("{{\"v\": {content:?}}}");
        let mut sealed = k.seal("D-1", "r:1", &json).unwrap();
        let i = pos.index(sealed.len());
        sealed[i] ^= 1 << bit;
        let err = k.open("D-1", "r:1", &sealed).unwrap_err();
        // Header bytes give parse errors, everything else the one integrity error.
        match i {
            0 | 1 => prop_assert!(matches!(err, Error::Malformed { .. }), "{err:?}"),
            2 => prop_assert!(matches!(err, Error::UnknownVersion { .. }), "{err:?}"),
            _ => prop_assert!(matches!(err, Error::Integrity), "{err:?}"),
        }
    }

    #[test]
    fn truncation_and_extension_are_rejected(content in "[ -~]{0,300}", cut in any::<prop::sample::Index>(), extra in prop::collection::vec(any::<u8>(), 1..40)) {
        let k = key();
        let json = format!("{{\"v\": {content:?}}}");
        let sealed = k.seal("D-1", "r:1", &json).unwrap();
        let short = &sealed[..cut.index(sealed.len())];
        prop_assert!(k.open("D-1", "r:1", short).is_err());
        let mut long = sealed.clone();
        long.extend_from_slice(&extra);
        prop_assert!(matches!(k.open("D-1", "r:1", &long), Err(Error::Integrity)));
    }

    #[test]
    fn wrong_doc_id_or_rev_is_rejected(id in "[A-Za-z0-9._-]{1,20}", other_id in "[A-Za-z0-9._-]{1,20}", rev in "[a-z]{1,8}:[0-9]{1,3}", other_rev in "[a-z]{1,8}:[0-9]{1,3}") {
        let k = key();
        let sealed = k.seal(&id, &rev, "{}").unwrap();
        prop_assert_eq!(k.open(&id, &rev, &sealed).unwrap(), "{}");
        if other_id != id {
            prop_assert!(matches!(k.open(&other_id, &rev, &sealed), Err(Error::Integrity)));
        }
        if other_rev != rev {
            prop_assert!(matches!(k.open(&id, &other_rev, &sealed), Err(Error::Integrity)));
        }
    }

    #[test]
    fn padme_overhead_at_most_12_percent(len in 1u64..(1 << 40)) {
        let p = padme(len);
        prop_assert!(p >= len);
        prop_assert!((p - len) as f64 / len as f64 <= 0.12);
    }

    #[test]
    fn server_doc_tampering_is_rejected(content in "[ -~]{0,200}", pos in any::<prop::sample::Index>(), bit in 0u8..8, other in "[A-Za-z0-9]{1,8}") {
        let k = sync_keys();
        let json = format!("{{\"v\": {content:?}}}");
        let sealed = k.seal_for_server("D-1", "r:1", Some(&json)).unwrap();
        let hidden = k.hidden_id("D-1");
        let mut flipped = sealed.clone();
        let i = pos.index(flipped.len());
        flipped[i] ^= 1 << bit;
        prop_assert!(k.open_from_server(&hidden, "r:1", &flipped).is_err());
        let mut long = sealed.clone();
        long.push(0);
        prop_assert!(k.open_from_server(&hidden, "r:1", &long).is_err());
        prop_assert!(k.open_from_server(&hidden, "r:1", &sealed[..i]).is_err());
        if other != "D-1" {
            prop_assert!(matches!(k.open_from_server(&k.hidden_id(&other), "r:1", &sealed), Err(Error::Integrity)), "moved doc accepted");
        }
        prop_assert!(matches!(k.open_from_server(&hidden, "r:2", &sealed), Err(Error::Integrity)), "wrong rev accepted");
    }
}
