//! Secrets file, passphrase change, backups and recovery codes.

use secrecy::SecretString;
use soledad_crypto::{
    Error, KdfParams, RecoveryCode, SecretsFile, StorageSecret, backup_id, make_backup,
    restore_from_backup,
};

const FAST: KdfParams = KdfParams::insecure_fast_for_tests();

fn pass(s: &str) -> SecretString {
    SecretString::from(s)
}

#[test]
fn save_load_unlock_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soledad.json");
    let secret = StorageSecret::generate().unwrap();
    SecretsFile::new(&secret, &pass("pw"), FAST)
        .unwrap()
        .save(&path)
        .unwrap();
    let loaded = SecretsFile::load(&path).unwrap();
    assert_eq!(loaded.unlock(&pass("pw")).unwrap(), secret);
    assert_eq!(loaded.params(), FAST);
    // Nothing but the file itself is left in the directory (temp file renamed).
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn file_never_contains_the_secret_or_passphrase() {
    let secret = StorageSecret::from_bytes([0x41; 64]);
    let json = SecretsFile::new(&secret, &pass("hunter2"), FAST)
        .unwrap()
        .to_json();
    let text = String::from_utf8(json).unwrap();
    assert!(!text.contains("hunter2"));
    assert!(!text.contains("QUFBQUFB")); // base64 of AAAAAA…
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["version"], 3);
    assert_eq!(value["kdf"], "scrypt");
    assert_eq!(value["cipher"], "aes-256-gcm");
    assert_eq!(value["kdf_length"], 32);
    assert_eq!(value["kdf_params"]["log_n"], 4);
}

#[test]
fn wrong_passphrase_is_a_typed_error() {
    let secret = StorageSecret::generate().unwrap();
    let file = SecretsFile::new(&secret, &pass("right"), FAST).unwrap();
    assert!(matches!(
        file.unlock(&pass("wrong")),
        Err(Error::WrongPassphrase)
    ));
}

#[test]
fn change_passphrase_rewraps_same_secret() {
    let secret = StorageSecret::generate().unwrap();
    let file = SecretsFile::new(&secret, &pass("old"), FAST).unwrap();
    let changed = file
        .change_passphrase(&pass("old"), &pass("new"), FAST)
        .unwrap();
    assert_ne!(changed.to_json(), file.to_json());
    assert!(matches!(
        changed.unlock(&pass("old")),
        Err(Error::WrongPassphrase)
    ));
    let again = changed.unlock(&pass("new")).unwrap();
    assert_eq!(again, secret);
    // Data keys are unchanged, so existing envelopes still open.
    let sealed = secret.doc_key().seal("D-1", "r:1", "{}").unwrap();
    assert_eq!(again.doc_key().open("D-1", "r:1", &sealed).unwrap(), "{}");
    assert!(matches!(
        file.change_passphrase(&pass("nope"), &pass("x"), FAST),
        Err(Error::WrongPassphrase)
    ));
}

#[test]
fn oversized_and_garbage_files_are_rejected() {
    let big = vec![b' '; soledad_crypto::MAX_SECRETS_FILE_BYTES + 1];
    assert!(matches!(
        SecretsFile::from_json(&big),
        Err(Error::TooLarge { .. })
    ));
    for garbage in [
        &b""[..],
        b"null",
        b"[]",
        b"{\"version\":\"3\"}",
        b"{\"version\":3}",
    ] {
        assert!(
            matches!(
                SecretsFile::from_json(garbage),
                Err(Error::Malformed { .. })
            ),
            "{:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SecretsFile::load(&dir.path().join("missing.json")),
        Err(Error::Io(_))
    ));
}

#[test]
fn production_params_are_capped_and_creating_with_absurd_ones_fails() {
    let absurd = KdfParams {
        log_n: 22,
        r: 8,
        p: 1,
    };
    let secret = StorageSecret::generate().unwrap();
    assert!(matches!(
        SecretsFile::new(&secret, &pass("x"), absurd),
        Err(Error::KdfParamsRejected { log_n: 22, .. })
    ));
    assert!(KdfParams::interactive().validate().is_ok());
}

#[test]
fn backup_round_trip_and_id_properties() {
    let secret = StorageSecret::generate().unwrap();
    let uuid = "user-1";
    let backup = make_backup(&secret, uuid, &pass("pw"), FAST).unwrap();
    assert_eq!(backup.id, backup_id(uuid, &pass("pw"), FAST).unwrap());
    assert_eq!(backup.id.len(), 43);
    assert_ne!(backup.id, backup_id("user-2", &pass("pw"), FAST).unwrap());
    assert_ne!(backup.id, backup_id(uuid, &pass("pw2"), FAST).unwrap());
    assert_eq!(
        restore_from_backup(&backup.blob, uuid, &pass("pw")).unwrap(),
        secret
    );
    assert!(matches!(
        restore_from_backup(&backup.blob, uuid, &pass("bad")),
        Err(Error::WrongPassphrase)
    ));
    // Another user's backup does not unlock, even with the same passphrase.
    assert!(matches!(
        restore_from_backup(&backup.blob, "user-2", &pass("pw")),
        Err(Error::WrongPassphrase)
    ));
    // A backup is not a local secrets file (the uuid is bound in).
    let as_file = SecretsFile::from_json(&backup.blob).unwrap();
    assert!(matches!(
        as_file.unlock(&pass("pw")),
        Err(Error::WrongPassphrase)
    ));
}

#[test]
fn recovery_code_round_trip() {
    let secret = StorageSecret::generate().unwrap();
    let code = RecoveryCode::generate().unwrap();
    let text = code.expose_text();
    assert_eq!(text.len(), 44);
    assert_eq!(text.split('-').count(), 9);
    let backup = code.make_backup(&secret).unwrap();
    assert_eq!(backup.id, code.server_id().unwrap());
    // What the user types back: lower case, spaces instead of dashes.
    let typed = text.to_lowercase().replace('-', " ");
    let parsed = RecoveryCode::parse(&typed).unwrap();
    assert_eq!(parsed, code);
    assert_eq!(parsed.restore(&backup.blob).unwrap(), secret);
    let other = RecoveryCode::generate().unwrap();
    assert_ne!(other.server_id().unwrap(), backup.id);
    assert!(matches!(
        other.restore(&backup.blob),
        Err(Error::WrongRecoveryCode)
    ));
}

#[test]
fn recovery_code_typos_are_caught() {
    let code = RecoveryCode::from_bytes([7; 20]);
    let text = code.expose_text().to_string();
    let chars: Vec<char> = text.chars().collect();
    // Every single-character substitution is either a checksum error or (for the
    // look-alikes O/0, I/L/1) the same code.
    for (i, c) in chars.iter().enumerate() {
        if *c == '-' {
            continue;
        }
        for replacement in "0123456789ABCDEFGHJKMNPQRSTVWXYZ".chars() {
            if replacement == *c {
                continue;
            }
            let mut typo = chars.clone();
            typo[i] = replacement;
            let typo: String = typo.into_iter().collect();
            assert!(
                matches!(RecoveryCode::parse(&typo), Err(Error::RecoveryCodeChecksum)),
                "typo at {i} not caught"
            );
        }
    }
    // Look-alike letters are read as digits.
    let lookalike = text.replace('0', "o").replace('1', "l");
    assert_eq!(RecoveryCode::parse(&lookalike).unwrap(), code);
    for bad in [
        "",
        "ABCD",
        &format!("{text}-AAAA"),
        &text.replace(text.chars().next().unwrap(), "U"),
    ] {
        assert!(
            matches!(RecoveryCode::parse(bad), Err(Error::RecoveryCodeMalformed)),
            "{bad:?}"
        );
    }
    assert_eq!(format!("{code:?}"), "RecoveryCode([REDACTED])");
}
