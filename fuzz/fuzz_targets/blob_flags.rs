//! Body of `POST /blobs/{uuid}/{blob_id}` (a JSON list of flag names): an accepted
//! body re-encodes to one that sets the same flags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_server::fuzzing::blob_flags;

fuzz_target!(|data: &[u8]| {
    let Ok(flags) = blob_flags(data) else {
        return;
    };
    let names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
    let body = format!("{names:?}");
    let again = blob_flags(body.as_bytes()).ok();
    assert_eq!(again.as_deref(), Some(&flags[..]), "{body}");
});
