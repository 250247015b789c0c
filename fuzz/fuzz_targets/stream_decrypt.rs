//! Blob stream decryptor over arbitrary bytes: never panics, never accepts a forged
//! stream, and the random-access API agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_crypto::{BlobKey, Preamble, decrypt_blob};

fuzz_target!(|data: &[u8]| {
    let key = BlobKey::from_bytes([9; 32]);
    let mut out = Vec::new();
    assert!(decrypt_blob(&key, "blob-1", data, &mut out).is_err(), "forged blob accepted");
    if let Ok((preamble, used)) = Preamble::parse(data) {
        if let Ok(dec) = key.decryptor(&preamble, preamble.blob_id()) {
            let mut seg = data[used..].to_vec();
            let index = u64::from(data.len() as u8 % 4);
            assert!(dec.open_segment(index, &mut seg).is_err());
        }
    }
});
