//! Document envelope: the outer parser round-trips byte for byte, and opening
//! arbitrary bytes never panics and never succeeds without the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_crypto::{DocKey, EnvelopeParts};

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = EnvelopeParts::parse(data) {
        assert_eq!(parts.to_bytes(), data);
    }
    let key = DocKey::from_bytes([7; 32]);
    assert!(key.open("D-1", "r:1", data).is_err(), "forged envelope accepted");
});
