#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The frame format as a peer sees it: whatever is encoded decodes to the same value,
//! however the bytes are split, and malformed input is refused with a typed error.

use proptest::prelude::*;
use soledad_protocol::{
    BatchLimits, DocFrame, ErrorBody, ErrorKind, ExchangeEnd, ExchangeRequestHeader,
    ExchangeResponseHeader, Frame, FrameDecoder, MAX_FRAME_LEN, ProtocolError, Receiver, Request,
    Response, Step,
};

fn doc_strategy() -> impl Strategy<Value = DocFrame> {
    (
        "[A-Za-z0-9_-]{1,64}",
        "[a-z0-9]{1,8}:[0-9]{1,5}(\\|[a-z0-9]{1,8}:[0-9]{1,5}){0,3}",
        any::<u64>(),
        "T-[0-9a-f]{0,32}",
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(id, rev, generation, trans_id, payload)| DocFrame {
            id,
            rev,
            generation,
            trans_id,
            payload: payload.into(),
        })
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    prop_oneof![
        doc_strategy().prop_map(Frame::Doc),
        (any::<u64>(), "T-[0-9a-f]{0,32}", any::<bool>()).prop_map(|(g, t, ensure)| {
            Frame::RequestHeader(ExchangeRequestHeader {
                last_known_generation: g,
                last_known_trans_id: t,
                ensure,
            })
        }),
        (any::<u64>(), "T-[0-9a-f]{0,32}").prop_map(|(generation, transaction_id)| {
            Frame::End(ExchangeEnd {
                generation,
                transaction_id,
            })
        }),
        (
            "[a-f0-9]{32}",
            any::<u64>(),
            "T-[0-9a-f]{0,32}",
            any::<u64>()
        )
            .prop_map(
                |(uid, g, t, n)| Frame::ResponseHeader(ExchangeResponseHeader {
                    target_replica_uid: uid,
                    target_generation: g,
                    target_transaction_id: t,
                    document_count: n,
                })
            ),
        ".{0,40}".prop_map(|m| Frame::Error(ErrorBody::new(ErrorKind::QuotaExceeded, m))),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_whatever_the_chunking(
        frames in proptest::collection::vec(frame_strategy(), 1..8),
        chunk in 1usize..64,
    ) {
        let mut wire = Vec::new();
        for frame in &frames {
            frame.encode(&mut wire).unwrap();
        }
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        for piece in wire.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push(frame);
            }
        }
        decoder.finish().unwrap();
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn a_cut_stream_never_yields_a_partial_frame(doc in doc_strategy(), cut in 1usize..64) {
        let wire = Frame::Doc(doc).to_bytes().unwrap();
        let cut = cut.min(wire.len() - 1);
        let mut decoder = FrameDecoder::new();
        decoder.push(&wire[..wire.len() - cut]);
        prop_assert_eq!(decoder.next_frame().unwrap(), None);
        prop_assert_eq!(decoder.finish(), Err(ProtocolError::UnexpectedEof));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_frame() {}
    }
}

#[test]
fn unknown_kind_is_refused() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&[0x7f, 0, 0, 0, 0]);
    assert_eq!(
        decoder.next_frame(),
        Err(ProtocolError::UnknownFrameKind(0x7f))
    );
}

#[test]
fn oversized_length_is_refused_before_allocating() {
    let mut decoder = FrameDecoder::new();
    let mut wire = vec![0x02];
    wire.extend_from_slice(&(MAX_FRAME_LEN + 1).to_be_bytes());
    decoder.push(&wire);
    assert!(matches!(
        decoder.next_frame(),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
}

#[test]
fn truncated_document_body_is_refused() {
    // A document frame whose body ends inside the rev field.
    let mut wire = vec![0x02, 0, 0, 0, 5];
    wire.extend_from_slice(&[0, 1, b'a', 0, 9]);
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    assert_eq!(
        decoder.next_frame(),
        Err(ProtocolError::Truncated("document"))
    );
}

#[test]
fn malformed_json_frame_is_refused_with_its_name() {
    let mut wire = vec![0x01, 0, 0, 0, 2];
    wire.extend_from_slice(b"{]");
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    match decoder.next_frame() {
        Err(ProtocolError::MalformedJson { what, .. }) => assert_eq!(what, "request header"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn document_payload_is_carried_as_raw_bytes() {
    let payload: Vec<u8> = (0..=255).collect();
    let doc = DocFrame {
        id: "id".into(),
        rev: "r:1".into(),
        generation: 3,
        trans_id: "T-1".into(),
        payload: payload.clone().into(),
    };
    let wire = Frame::Doc(doc).to_bytes().unwrap();
    // kind + len + (2+2) + (2+3) + 8 + (2+3) + payload: no base64 inflation.
    assert_eq!(wire.len(), 5 + 4 + 5 + 8 + 5 + payload.len());
    assert!(wire.windows(payload.len()).any(|w| w == payload.as_slice()));
}

/// Runs a receiver over `bytes` split at `cut`; returns how many documents it handed
/// out (in batches, at the end, or with a break). Panics only if the receiver does.
fn drive<D: soledad_protocol::Direction>(bytes: &[u8], cut: usize, limits: BatchLimits) -> usize {
    let mut receiver = Receiver::<D>::with_limits(limits);
    let cut = cut.min(bytes.len());
    let mut delivered = 0;
    for piece in [&bytes[..cut], &bytes[cut..]] {
        receiver.push(piece);
        loop {
            match receiver.poll() {
                Ok(Step::NeedInput) => break,
                Ok(Step::Batch(batch)) => delivered += batch.len(),
                Ok(Step::End { last, .. } | Step::PeerError { last, .. }) => {
                    delivered += last.len()
                }
                Ok(Step::Header(_)) => {}
                Err(broken) => return delivered + broken.pending.len(),
            }
        }
    }
    match receiver.finish() {
        Ok(()) => delivered,
        Err(broken) => delivered + broken.pending.len(),
    }
}

proptest! {
    /// Whatever frames arrive, in whatever order and chunking, the receivers of both
    /// directions return steps or a typed break, never panic, and never hand out a
    /// document twice or one that was not sent.
    #[test]
    fn receivers_survive_any_frame_sequence(
        frames in proptest::collection::vec(frame_strategy(), 0..12),
        cut in 0usize..4096,
        docs_per_batch in 1usize..4,
    ) {
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode(&mut bytes).unwrap();
        }
        let sent = frames.iter().filter(|f| matches!(f, Frame::Doc(_))).count();
        let limits = BatchLimits { docs: docs_per_batch, bytes: 1 << 20 };
        prop_assert!(drive::<Request>(&bytes, cut, limits) <= sent);
        prop_assert!(drive::<Response>(&bytes, cut, limits) <= sent);
    }

    #[test]
    fn receivers_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
        drive::<Request>(&bytes, cut, BatchLimits::DEFAULT);
        drive::<Response>(&bytes, cut, BatchLimits::DEFAULT);
    }
}

#[test]
fn a_well_formed_exchange_delivers_every_document_once() {
    let mut bytes = Vec::new();
    Frame::RequestHeader(ExchangeRequestHeader {
        last_known_generation: 0,
        last_known_trans_id: String::new(),
        ensure: true,
    })
    .encode(&mut bytes)
    .unwrap();
    for generation in 1..=10 {
        Frame::Doc(DocFrame {
            id: format!("d{generation}"),
            rev: "r:1".into(),
            generation,
            trans_id: format!("T-{generation}"),
            payload: vec![1; 3].into(),
        })
        .encode(&mut bytes)
        .unwrap();
    }
    Frame::End(ExchangeEnd {
        generation: 10,
        transaction_id: "T-10".into(),
    })
    .encode(&mut bytes)
    .unwrap();
    for cut in [0, 1, 7, bytes.len() / 2, bytes.len()] {
        let limits = BatchLimits {
            docs: 3,
            bytes: 1 << 20,
        };
        assert_eq!(drive::<Request>(&bytes, cut, limits), 10);
    }
}

#[test]
fn a_field_too_long_for_a_frame_is_refused_never_cut() {
    use soledad_protocol::{MAX_FRAME_FIELD_BYTES, ProtocolError};
    let doc = DocFrame {
        id: "D-1".to_owned(),
        rev: "r".repeat(MAX_FRAME_FIELD_BYTES + 1),
        generation: 1,
        trans_id: "T-1".to_owned(),
        payload: bytes::Bytes::from_static(b"sealed"),
    };
    assert!(!doc.fits());
    assert!(matches!(
        doc.check_fits(),
        Err(ProtocolError::FieldTooLong { field: "rev", len }) if len == MAX_FRAME_FIELD_BYTES + 1
    ));
    let mut out = b"before".to_vec();
    let err = Frame::Doc(doc.clone()).encode(&mut out).unwrap_err();
    assert!(
        matches!(err, ProtocolError::FieldTooLong { field: "rev", .. }),
        "{err:?}"
    );
    assert_eq!(out, b"before", "nothing of a refused frame is written");
    // The longest field that fits round-trips whole.
    let longest = DocFrame {
        rev: "r".repeat(MAX_FRAME_FIELD_BYTES),
        ..doc
    };
    assert!(longest.fits());
    let wire = Frame::Doc(longest.clone()).to_bytes().unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    assert_eq!(decoder.next_frame().unwrap(), Some(Frame::Doc(longest)));
}
