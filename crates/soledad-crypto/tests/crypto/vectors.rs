//! Known-answer vectors (tests/testdata, made by an independent Python implementation
//! of docs/crypto.md in tests/reference/make_vectors.py). Every vector goes through
//! every entry point that accepts its format; a format change must fail here.

use std::io::Read as _;

use secrecy::SecretString;
use soledad_crypto::{
    BlobKey, DocKey, EnvelopeParts, IdBoxKey, IdKey, KdfParams, Method, Preamble, RecoveryCode,
    SERVER_DOC_VERSION, Scheme, SecretsFile, ServerDocParts, StorageSecret, SyncKeys, backup_id,
    decrypt_blob, restore_from_backup,
};
use tokio::io::AsyncReadExt as _;

use crate::util::{Trickle, Vector, kind, load, load_all};

fn result_kind<T>(r: &Result<T, soledad_crypto::Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => kind(e),
    }
}

#[test]
fn keys_derive() {
    let v = load("keys_derive");
    let secret = StorageSecret::from_bytes(v.hex_array("secret"));
    assert_eq!(
        secret.local_db_key().expose_bytes().to_vec(),
        v.hex("local_db_key")
    );
    assert_eq!(*secret.local_db_key().to_hex(), v.field("local_db_key"));
    assert_eq!(secret.doc_key(), DocKey::from_bytes(v.hex_array("doc_key")));
    assert_eq!(
        secret.blob_key(),
        BlobKey::from_bytes(v.hex_array("blob_key"))
    );
    assert_eq!(
        secret.id_key().server_doc_id(v.field("doc_id")),
        v.field("server_doc_id")
    );
}

#[test]
fn keys_id_box() {
    let v = load("keys_id_box");
    let secret = StorageSecret::from_bytes(v.hex_array("secret"));
    assert_eq!(
        secret.id_box_key(),
        IdBoxKey::from_bytes(v.hex_array("id_box_key"))
    );
    assert_eq!(secret.id_key(), IdKey::from_bytes(v.hex_array("id_key")));
}

#[test]
fn server_doc_vectors_cover_both_versions() {
    let versions: Vec<u8> = load_all("serverdoc_")
        .iter()
        .filter(|v| v.expect() == "ok")
        .map(|v| v.fields.get("version").map_or(1, |s| s.parse().unwrap()))
        .collect();
    assert!(versions.contains(&1) && versions.contains(&SERVER_DOC_VERSION));
}

#[test]
fn envelope_vectors() {
    for v in load_all("envelope_") {
        let key = DocKey::from_bytes(v.hex_array("doc_key"));
        let (doc_id, rev) = (v.field("doc_id"), v.field("rev"));
        let opened = key.open(doc_id, rev, &v.body);
        assert_eq!(result_kind(&opened), v.expect(), "{}: open", v.name);
        // The outer parser agrees on malformed/unknown input and round-trips the rest.
        match EnvelopeParts::parse(&v.body) {
            Ok(parts) => {
                assert!(matches!(v.expect(), "ok" | "integrity"), "{}", v.name);
                assert_eq!(parts.to_bytes(), v.body, "{}: re-encode", v.name);
            }
            Err(e) => assert_eq!(kind(&e), v.expect(), "{}: parse", v.name),
        }
        if v.expect() == "ok" {
            assert_eq!(opened.unwrap(), v.field("content"), "{}", v.name);
            let sealed = key
                .danger_seal_with_nonce(doc_id, rev, v.field("content"), v.hex_array("nonce"))
                .unwrap();
            assert_eq!(sealed, v.body, "{}: seal reproduces the vector", v.name);
        }
    }
}

#[test]
fn server_doc_vectors() {
    for v in load_all("serverdoc_") {
        // v1 vectors predate the id-box key (their box key is derived from the id key).
        let id_box_key = v
            .fields
            .get("id_box_key")
            .map_or([0; 32], |_| v.hex_array("id_box_key"));
        let keys = SyncKeys::from_keys(
            DocKey::from_bytes(v.hex_array("doc_key")),
            IdKey::from_bytes(v.hex_array("id_key")),
            IdBoxKey::from_bytes(id_box_key),
        );
        let version: u8 = v.fields.get("version").map_or(1, |s| s.parse().unwrap());
        let (doc_id, hidden, rev) = (v.field("doc_id"), v.field("hidden_id"), v.field("open_rev"));
        let opened = keys.open_from_server(hidden, rev, &v.body);
        assert_eq!(
            result_kind(&opened),
            v.expect(),
            "{}: open_from_server",
            v.name
        );
        match ServerDocParts::parse(&v.body) {
            Ok(parts) => {
                assert!(matches!(v.expect(), "ok" | "integrity"), "{}", v.name);
                assert_eq!(parts.to_bytes(), v.body, "{}: re-encode", v.name);
            }
            Err(e) => assert_eq!(kind(&e), v.expect(), "{}: parse", v.name),
        }
        if v.expect() == "ok" {
            let content = v.fields.get("content").map(String::as_str);
            assert_eq!(v.fields.contains_key("tombstone"), content.is_none());
            assert_eq!(keys.hidden_id(doc_id), hidden, "{}", v.name);
            let (got_id, got_content) = opened.unwrap();
            assert_eq!(got_id, doc_id, "{}", v.name);
            assert_eq!(got_content.as_deref(), content, "{}", v.name);
            if version != SERVER_DOC_VERSION {
                // Old versions are opened, never written.
                continue;
            }
            let sealed = keys
                .danger_seal_with_nonces(
                    doc_id,
                    v.field("rev"),
                    content,
                    v.hex_array("box_nonce"),
                    v.hex_array("envelope_nonce"),
                )
                .unwrap();
            assert_eq!(sealed, v.body, "{}: seal reproduces the vector", v.name);
        }
    }
}

fn check_preamble_fields(v: &Vector, p: &Preamble) {
    let scheme = match p.scheme() {
        Scheme::Symkey => "symkey",
        Scheme::External => "external",
        _ => "other",
    };
    let method = match p.method() {
        Method::Aes256Gcm => "aes-256-gcm",
        Method::Pgp => "pgp",
        _ => "other",
    };
    assert_eq!(scheme, v.field("scheme"), "{}", v.name);
    assert_eq!(method, v.field("method"), "{}", v.name);
    assert_eq!(p.blob_id(), v.field("blob_id"), "{}", v.name);
    assert_eq!(
        p.plaintext_size().to_string(),
        v.field("plaintext_size"),
        "{}",
        v.name
    );
}

#[test]
fn preamble_vectors() {
    for v in load_all("preamble_") {
        let parsed = Preamble::parse(&v.body);
        assert_eq!(result_kind(&parsed), v.expect(), "{}", v.name);
        if let Ok((p, used)) = parsed {
            check_preamble_fields(&v, &p);
            assert_eq!(p.to_bytes(), v.body[..used], "{}: re-encode", v.name);
            assert_eq!(p.encoded_len(), used, "{}", v.name);
            if p.scheme() == Scheme::External {
                let built = Preamble::external(p.blob_id(), p.plaintext_size()).unwrap();
                assert_eq!(built.to_bytes(), v.body[..used], "{}", v.name);
            }
        }
    }
}

/// Opens a stored blob with the random-access API: parse the preamble, then open the
/// segments one by one at their computed offsets.
fn open_by_segments(
    key: &BlobKey,
    blob_id: &str,
    stored: &[u8],
) -> Result<Vec<u8>, soledad_crypto::Error> {
    let (preamble, used) = Preamble::parse(stored)?;
    let dec = key.decryptor(&preamble, blob_id)?;
    let body = &stored[used..];
    if body.len() as u64 != preamble.body_len() {
        return Err(soledad_crypto::Error::Integrity);
    }
    let mut out = Vec::new();
    if preamble.plaintext_size() == 0 {
        let mut buf = body.to_vec();
        dec.open_segment(0, &mut buf)?;
        return Ok(buf);
    }
    let span = preamble.segment_span(0, u64::MAX).unwrap();
    let mut offset = span.body_start as usize;
    for index in span.first_segment..=span.last_segment {
        let len = soledad_crypto::SEALED_SEGMENT_SIZE.min(body.len() - offset);
        let mut buf = body[offset..offset + len].to_vec();
        dec.open_segment(index, &mut buf)?;
        out.extend_from_slice(&buf);
        offset += len;
    }
    Ok(out)
}

#[test]
fn stream_vectors() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for v in load_all("stream_") {
        let key = BlobKey::from_bytes(v.hex_array("blob_key"));
        let blob_id = v.field("blob_id");
        let expect = v.expect();

        // 1. decrypt_blob (reader → writer)
        let mut out = Vec::new();
        let r = decrypt_blob(&key, blob_id, &v.body[..], &mut out);
        assert_eq!(result_kind(&r), expect, "{}: decrypt_blob", v.name);

        // 2. DecryptReader with odd-sized partial reads
        let mut reader = soledad_crypto::DecryptReader::new(
            &key,
            blob_id,
            Trickle {
                data: &v.body,
                chunk: 1000,
            },
        );
        let mut out2 = Vec::new();
        let r2 = reader
            .read_to_end(&mut out2)
            .map_err(soledad_crypto::Error::from);
        assert_eq!(result_kind(&r2), expect, "{}: DecryptReader", v.name);

        // 3. AsyncDecryptReader
        let mut out3 = Vec::new();
        let r3 = runtime.block_on(async {
            let mut reader = soledad_crypto::AsyncDecryptReader::new(&key, blob_id, &v.body[..]);
            reader
                .read_to_end(&mut out3)
                .await
                .map_err(soledad_crypto::Error::from)
        });
        assert_eq!(result_kind(&r3), expect, "{}: AsyncDecryptReader", v.name);

        // 4. random access, segment by segment
        let r4 = open_by_segments(&key, blob_id, &v.body);
        if expect == "ok" || expect == "external" {
            assert_eq!(result_kind(&r4), expect, "{}: segments", v.name);
        } else {
            // Segment-wise opening cannot see truncation at a segment boundary, but
            // with the length check above it must still refuse every defect here.
            assert!(r4.is_err(), "{}: segments accepted a defect", v.name);
        }

        if expect == "ok" {
            let plain = v.plaintext();
            assert_eq!(out, plain, "{}", v.name);
            assert_eq!(out2, plain, "{}", v.name);
            assert_eq!(out3, plain, "{}", v.name);
            assert_eq!(r4.unwrap(), plain, "{}", v.name);
            // 5. the encryptor reproduces the vector byte for byte
            let mut enc = key
                .danger_encryptor_with_salt(blob_id, plain.len() as u64, v.hex_array("salt"))
                .unwrap();
            let mut stored = enc.preamble_bytes().to_vec();
            let mut rest = &plain[..];
            while let Some(len) = enc.next_segment_len() {
                let mut seg = rest[..len].to_vec();
                rest = &rest[len..];
                enc.seal_next(&mut seg).unwrap();
                stored.extend_from_slice(&seg);
            }
            assert_eq!(
                stored, v.body,
                "{}: encryptor reproduces the vector",
                v.name
            );
        }
    }
}

fn params(v: &Vector) -> KdfParams {
    KdfParams {
        log_n: v.field("log_n").parse().unwrap(),
        r: v.field("r").parse().unwrap(),
        p: v.field("p").parse().unwrap(),
    }
}

#[test]
fn secrets_vectors() {
    let dir = tempfile::tempdir().unwrap();
    for v in load_all("secrets_") {
        let pass = SecretString::from(v.field("passphrase"));
        let secret = StorageSecret::from_bytes(v.hex_array("secret"));
        let parsed = SecretsFile::from_json(&v.body);
        let unlocked = parsed.as_ref().map_err(kind).map(|f| f.unlock(&pass));
        let got = match &unlocked {
            Err(k) => *k,
            Ok(r) => result_kind(r),
        };
        assert_eq!(got, v.expect(), "{}: from_json + unlock", v.name);
        // load() from disk agrees with from_json.
        let path = dir.path().join(&v.name);
        std::fs::write(&path, &v.body).unwrap();
        let loaded = SecretsFile::load(&path);
        assert_eq!(
            loaded.as_ref().map_err(kind).err(),
            parsed.as_ref().map_err(kind).err(),
            "{}: load",
            v.name
        );
        if v.expect() == "ok" {
            let file = parsed.unwrap();
            assert_eq!(file.unlock(&pass).unwrap(), secret);
            assert_eq!(file.params(), params(&v));
            let remade = SecretsFile::danger_new_with_salt_and_iv(
                &secret,
                &pass,
                params(&v),
                v.hex_array("kdf_salt"),
                v.hex_array("iv"),
            )
            .unwrap();
            assert_eq!(remade.to_json(), v.body, "{}: re-made file", v.name);
            assert_eq!(file.to_json(), v.body, "{}: re-encoded file", v.name);
        }
    }
}

#[test]
fn backup_vectors() {
    for v in load_all("backup_") {
        let pass = SecretString::from(v.field("passphrase"));
        let uuid = v.field("uuid");
        let restored = restore_from_backup(&v.body, uuid, &pass);
        assert_eq!(result_kind(&restored), v.expect(), "{}", v.name);
        if v.expect() == "ok" {
            assert_eq!(
                restored.unwrap(),
                StorageSecret::from_bytes(v.hex_array("secret"))
            );
            assert_eq!(
                backup_id(uuid, &pass, params(&v)).unwrap(),
                v.field("backup_id")
            );
        } else {
            assert_ne!(
                backup_id(uuid, &pass, params(&v)).unwrap(),
                v.field("backup_id")
            );
        }
    }
}

#[test]
fn recovery_vectors() {
    for v in load_all("recovery_") {
        let secret = StorageSecret::from_bytes(v.hex_array("secret"));
        let parsed = RecoveryCode::parse(v.field("typed_as"));
        let restored = parsed.as_ref().map_err(kind).map(|c| c.restore(&v.body));
        let got = match &restored {
            Err(k) => *k,
            Ok(r) => result_kind(r),
        };
        assert_eq!(got, v.expect(), "{}", v.name);
        let from_bytes = RecoveryCode::from_bytes(v.hex_array("code_bytes"));
        if v.expect() != "recovery_code_checksum" {
            assert_eq!(
                *from_bytes.expose_text(),
                v.field("code_text"),
                "{}",
                v.name
            );
            assert_eq!(
                RecoveryCode::parse(v.field("code_text")).unwrap(),
                from_bytes
            );
        }
        if v.expect() == "ok" {
            let code = parsed.unwrap();
            assert_eq!(code, from_bytes);
            assert_eq!(restored.unwrap().unwrap(), secret);
            assert_eq!(code.server_id().unwrap(), v.field("recovery_id"));
            let backup = code
                .danger_make_backup_with_iv(&secret, v.hex_array("iv"))
                .unwrap();
            assert_eq!(backup.blob, v.body, "{}: re-made blob", v.name);
            assert_eq!(backup.id, v.field("recovery_id"));
        }
    }
}
