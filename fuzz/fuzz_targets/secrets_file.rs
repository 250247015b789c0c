//! Secrets file parser: any bytes either fail with a typed error or parse to a file
//! whose encoding parses back to the same file and re-encodes identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_crypto::SecretsFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = SecretsFile::from_json(data) {
        let encoded = file.to_json();
        let again = SecretsFile::from_json(&encoded).expect("re-encoded file parses");
        assert_eq!(again, file);
        assert_eq!(again.to_json(), encoded);
    }
});
