//! Shared helpers: known-answer vector files and test data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::Digest as _;

/// One `tests/testdata/<area>_<case>` file: `key: value` header lines, `---`, body.
pub struct Vector {
    pub name: String,
    pub fields: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Vector {
    pub fn field(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("{}: missing field {key}", self.name))
    }

    pub fn hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.field(key)).unwrap()
    }

    pub fn hex_array<const N: usize>(&self, key: &str) -> [u8; N] {
        self.hex(key).try_into().unwrap()
    }

    pub fn expect(&self) -> &str {
        self.field("expect")
    }

    /// The `plaintext: pattern N` field, generated.
    pub fn plaintext(&self) -> Vec<u8> {
        let n: usize = self
            .field("plaintext")
            .strip_prefix("pattern ")
            .unwrap()
            .parse()
            .unwrap();
        pattern(n)
    }
}

pub fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata")
}

pub fn load(name: &str) -> Vector {
    let raw = std::fs::read(testdata_dir().join(name)).unwrap();
    let split = raw
        .windows(5)
        .position(|w| w == b"\n---\n")
        .unwrap_or_else(|| panic!("{name}: no --- separator"));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let rest = &raw[split + 5..];
    let mut fields = BTreeMap::new();
    for line in head.lines().filter(|l| !l.starts_with('#')) {
        let (k, v) = line
            .split_once(": ")
            .unwrap_or((line.trim_end_matches(':'), ""));
        fields.insert(k.to_owned(), v.to_owned());
    }
    let body = match fields.get("body").map(String::as_str) {
        Some("hex") => {
            let text: String = std::str::from_utf8(rest)
                .unwrap()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            hex::decode(text).unwrap()
        }
        Some("raw") | Some("text") => rest.to_vec(),
        other => panic!("{name}: unknown body encoding {other:?}"),
    };
    let digest = hex::encode(sha2::Sha256::digest(&body));
    assert_eq!(
        fields["sha256"], digest,
        "{name}: body does not match its sha256 header"
    );
    Vector {
        name: name.to_owned(),
        fields,
        body,
    }
}

/// Every vector whose name starts with `prefix`, sorted by name.
pub fn load_all(prefix: &str) -> Vec<Vector> {
    let mut names: Vec<String> = std::fs::read_dir(testdata_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no vectors named {prefix}*");
    names.iter().map(|n| load(n)).collect()
}

/// Deterministic test data: byte i = (31·i + 7) mod 251.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// A reader that hands out at most `chunk` bytes per `read` (exercises the
/// adapters' partial-read paths).
pub struct Trickle<'a> {
    pub data: &'a [u8],
    pub chunk: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Name of an error kind as used in the vectors' `expect:` field.
pub fn kind(err: &soledad_crypto::Error) -> &'static str {
    use soledad_crypto::Error as E;
    match err {
        E::Integrity => "integrity",
        E::WrongPassphrase => "wrong_passphrase",
        E::WrongRecoveryCode => "wrong_recovery_code",
        E::Malformed { .. } => "malformed",
        E::UnknownVersion { .. } => "unknown_version",
        E::UnsupportedKdf => "unsupported_kdf",
        E::UnsupportedCipher => "unsupported_cipher",
        E::UnsupportedScheme => "unsupported_scheme",
        E::ExternalBlob => "external",
        E::KdfParamsRejected { .. } => "kdf_params_rejected",
        E::RecoveryCodeMalformed => "recovery_code_malformed",
        E::RecoveryCodeChecksum => "recovery_code_checksum",
        E::TooLarge { .. } => "too_large",
        E::InvalidBlobId => "invalid_blob_id",
        E::SizeMismatch => "size_mismatch",
        E::Random => "random",
        E::Io(_) => "io",
        _ => "other",
    }
}
