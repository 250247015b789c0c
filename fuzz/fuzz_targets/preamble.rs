//! Blob preamble: parse, re-encode, compare the consumed bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_crypto::Preamble;

fuzz_target!(|data: &[u8]| {
    if let Ok((preamble, used)) = Preamble::parse(data) {
        assert_eq!(used, preamble.encoded_len());
        assert_eq!(preamble.to_bytes(), data[..used]);
        let _ = preamble.body_len();
        let _ = preamble.segment_span(0, u64::MAX);
    }
});
