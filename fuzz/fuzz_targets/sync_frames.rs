//! Sync frame decoder (`soledad_protocol::FrameDecoder`), fed the same bytes twice:
//! whole, and cut at fuzzer-chosen points. Both feedings must agree frame for frame
//! and on whether the stream is rejected; every decoded frame re-encodes to a frame
//! that decodes to itself, and a document frame re-encodes byte for byte.
//!
//! Input: `n (1 byte) ‖ n chunk lengths (1 byte each) ‖ stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_protocol::{Frame, FrameDecoder};

/// Decodes `stream` pushed in chunks of the given lengths (the rest in one push).
/// Returns the frames, whether an error stopped the decoder, and for each frame the
/// bytes it was decoded from.
fn decode(stream: &[u8], chunks: &[u8]) -> (Vec<(Frame, Vec<u8>)>, bool) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let (mut pushed, mut consumed) = (0usize, 0usize);
    let mut rest = stream;
    let mut cuts = chunks.iter().map(|&c| usize::from(c));
    while !rest.is_empty() {
        let take = cuts.next().unwrap_or(rest.len()).min(rest.len());
        let (now, later) = rest.split_at(take);
        decoder.push(now);
        pushed += now.len();
        rest = later;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let end = pushed - decoder.buffered();
                    frames.push((frame, stream[consumed..end].to_vec()));
                    consumed = end;
                }
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    assert_eq!(decoder.finish().is_err(), decoder.buffered() > 0);
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (chunks, stream) = rest.split_at(n);

    let whole = decode(stream, &[]);
    let split = decode(stream, chunks);
    assert_eq!(whole, split, "decoding depends on how the bytes arrive");

    for (frame, wire) in &whole.0 {
        let encoded = frame.to_bytes().expect("a decoded frame fits when re-encoded");
        if matches!(frame, Frame::Doc(_)) {
            assert_eq!(&encoded[..], &wire[..], "document frame does not re-encode");
        }
        let mut again = FrameDecoder::new();
        again.push(&encoded);
        assert_eq!(again.next_frame().ok().flatten().as_ref(), Some(frame));
        assert_eq!(again.buffered(), 0);
    }
});
