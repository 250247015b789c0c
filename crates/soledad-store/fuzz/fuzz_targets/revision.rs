//! Revisions: a parse that succeeds re-encodes to exactly the input bytes, and
//! comparing/merging parsed revisions never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_store::VectorClock;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (left, right) = text.split_once('#').unwrap_or((text, ""));
    if let Ok(clock) = VectorClock::parse(left) {
        assert_eq!(clock.to_string(), left, "canonical revisions re-encode byte-exact");
        if let Ok(other) = VectorClock::parse(right) {
            let _ = clock.compare(&other);
            let joined = clock.join(&other);
            assert!(!other.is_newer(&joined));
            assert!(!clock.is_newer(&joined));
        }
    }
});
