//! Sync payload (id box + envelope, v1 and v2): the outer parser round-trips byte for byte, and
//! opening arbitrary bytes under any hidden id never panics and never succeeds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_crypto::{DocKey, IdBoxKey, IdKey, ServerDocParts, SyncKeys};

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = ServerDocParts::parse(data) {
        assert_eq!(parts.to_bytes(), data);
    }
    let keys = SyncKeys::from_keys(
        DocKey::from_bytes([7; 32]),
        IdKey::from_bytes([8; 32]),
        IdBoxKey::from_bytes([9; 32]),
    );
    let hidden = keys.hidden_id("D-1");
    assert!(
        keys.open_from_server(&hidden, "r:1", data).is_err(),
        "forged payload accepted"
    );
});
