//! Recovery codes and recovery blobs: parse what a user might type and what the
//! server might return.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_crypto::RecoveryCode;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(code) = RecoveryCode::parse(text) {
            let canonical = code.expose_text();
            assert_eq!(RecoveryCode::parse(&canonical).expect("canonical parses"), code);
        }
    }
    let _ = soledad_crypto::parse_recovery_blob(data);
    let code = RecoveryCode::from_bytes([3; 20]);
    if let Ok(secret) = code.restore(data) {
        // Only a blob wrapped by this code can open; re-wrapping must round-trip.
        let backup = code.make_backup(&secret).expect("wrap");
        assert_eq!(code.restore(&backup.blob).expect("unwrap"), secret);
    }
});
