//! `Range` header of `GET /blobs/{uuid}/{blob_id}`: an accepted value re-encodes to
//! a header that parses to the same range, and resolving it against any blob size
//! either refuses (416) or selects at least one byte, all inside the blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_server::blobs::RangeSpec;
use soledad_server::fuzzing::range;

fuzz_target!(|data: &[u8]| {
    let Some(spec) = range(data) else {
        return;
    };
    let text = match spec {
        RangeSpec::From {
            start,
            end_inclusive: Some(end),
        } => format!("bytes={start}-{end}"),
        RangeSpec::From {
            start,
            end_inclusive: None,
        } => format!("bytes={start}-"),
        RangeSpec::Suffix { len } => format!("bytes=-{len}"),
    };
    assert_eq!(range(text.as_bytes()), Some(spec), "{text}");

    let (start, end, len) = match spec {
        RangeSpec::From {
            start,
            end_inclusive,
        } => (start, end_inclusive.unwrap_or(0), 0),
        RangeSpec::Suffix { len } => (0, 0, len),
    };
    for size in [
        0,
        1,
        2,
        4096,
        start,
        start.saturating_add(1),
        end,
        end.saturating_add(1),
        len,
    ]
    .into_iter()
    .chain([len.saturating_sub(1), u64::MAX])
    {
        if let Ok((first, count)) = spec.resolve(size) {
            assert!(count >= 1, "{spec:?} on {size}: empty range accepted");
            let past = first.checked_add(count).expect("range end overflows");
            assert!(
                past <= size,
                "{spec:?} on {size}: ({first}, {count}) leaves the blob"
            );
        }
    }
});
