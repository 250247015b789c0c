//! The receiving half of a sync exchange as a sans-I/O state machine.
//!
//! Both sides receive a stream of the same shape: a header, document frames, an end
//! frame. The server receives the request (a [`Request`] header, then the source's
//! documents); the client receives the response (a [`Response`] header, then the
//! target's documents, or an error frame mid-stream). Both must commit documents in
//! bounded batches, each with the sender's position of its last document, and record
//! the end position only once every document before it is committed. This module
//! holds that logic once; the client and server are thin drivers that feed bytes in
//! and apply what comes out.
//!
//! ```
//! use soledad_protocol::{DocFrame, ExchangeEnd, ExchangeRequestHeader, Frame, Receiver, Request, Step};
//!
//! let mut wire = Vec::new();
//! Frame::RequestHeader(ExchangeRequestHeader {
//!     last_known_generation: 0,
//!     last_known_trans_id: String::new(),
//!     ensure: true,
//! })
//! .encode(&mut wire).unwrap();
//! Frame::Doc(DocFrame {
//!     id: "hidden".into(),
//!     rev: "r:1".into(),
//!     generation: 1,
//!     trans_id: "T-1".into(),
//!     payload: b"sealed".to_vec().into(),
//! })
//! .encode(&mut wire).unwrap();
//! Frame::End(ExchangeEnd { generation: 1, transaction_id: "T-1".into() }).encode(&mut wire).unwrap();
//!
//! let mut receiver = Receiver::<Request>::new();
//! receiver.push(&wire);
//! assert!(matches!(receiver.poll(), Ok(Step::Header(_))));
//! let Ok(Step::End { last, end }) = receiver.poll() else { panic!() };
//! assert_eq!(last.len(), 1);
//! assert_eq!(end.generation, 1);
//! assert!(receiver.finish().is_ok());
//! ```

use crate::error::ProtocolError;
use crate::error_kind::ErrorBody;
use crate::frame::{DocFrame, Frame, FrameDecoder};
use crate::limits::BatchLimits;
use crate::sync::{ExchangeEnd, ExchangeRequestHeader, ExchangeResponseHeader};

mod sealed {
    pub trait Sealed {}
}

/// Which stream a [`Receiver`] reads: the request (server side) or the response
/// (client side). Sealed: the two directions are the protocol.
pub trait Direction: sealed::Sealed {
    /// The header frame that opens this stream.
    type Header;
    /// What the header is called in errors.
    const HEADER_NAME: &'static str;
    /// The header, or the frame back when it is another kind.
    #[doc(hidden)]
    fn header(frame: Frame) -> Result<Self::Header, Frame>;
    /// Whether the sender may abort with an error frame.
    #[doc(hidden)]
    const ACCEPTS_ERROR_FRAME: bool;
}

/// The request stream, received by the server: [`ExchangeRequestHeader`] first; error
/// frames are not part of a request.
#[derive(Debug)]
pub enum Request {}

/// The response stream, received by the client: [`ExchangeResponseHeader`] first; the
/// server may abort with an error frame.
#[derive(Debug)]
pub enum Response {}

impl sealed::Sealed for Request {}
impl sealed::Sealed for Response {}

impl Direction for Request {
    type Header = ExchangeRequestHeader;
    const HEADER_NAME: &'static str = "request header";
    const ACCEPTS_ERROR_FRAME: bool = false;
    fn header(frame: Frame) -> Result<Self::Header, Frame> {
        match frame {
            Frame::RequestHeader(header) => Ok(header),
            other => Err(other),
        }
    }
}

impl Direction for Response {
    type Header = ExchangeResponseHeader;
    const HEADER_NAME: &'static str = "response header";
    const ACCEPTS_ERROR_FRAME: bool = true;
    fn header(frame: Frame) -> Result<Self::Header, Frame> {
        match frame {
            Frame::ResponseHeader(header) => Ok(header),
            other => Err(other),
        }
    }
}

/// Documents to apply and commit together, in the sender's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    docs: Vec<DocFrame>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, doc: DocFrame) {
        self.bytes = self.bytes.saturating_add(doc.payload.len());
        self.docs.push(doc);
    }

    /// The documents.
    pub fn docs(&self) -> &[DocFrame] {
        &self.docs
    }

    /// The documents, by value.
    pub fn into_docs(self) -> Vec<DocFrame> {
        self.docs
    }

    /// How many documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Payload bytes of the batch.
    pub fn payload_bytes(&self) -> usize {
        self.bytes
    }

    /// The sender's position after the last document (generation, transaction id):
    /// what to record with the batch so that a cut exchange resumes after it.
    pub fn last_position(&self) -> Option<(u64, &str)> {
        self.docs
            .last()
            .map(|doc| (doc.generation, doc.trans_id.as_str()))
    }
}

/// What the driver must do next.
#[derive(Debug, PartialEq)]
pub enum Step<H> {
    /// Nothing complete yet: [`push`](Receiver::push) more bytes, or call
    /// [`finish`](Receiver::finish) when the stream has ended.
    NeedInput,
    /// The stream's header: check it before any document is applied.
    Header(H),
    /// A full batch: apply and commit it, with its last position, in one transaction.
    Batch(Batch),
    /// The sender's end: apply and commit `last` (possibly empty), then record `end`
    /// as the sender's position. Only trailing-byte checks remain
    /// ([`finish`](Receiver::finish)).
    End {
        /// The documents received since the last full batch.
        last: Batch,
        /// The sender's position covering every document of the stream.
        end: ExchangeEnd,
    },
    /// The sender gave up mid-stream (response only): commit `last`, which holds only
    /// complete documents, then report `error`.
    PeerError {
        /// The documents received since the last full batch.
        last: Batch,
        /// What the sender reported.
        error: ErrorBody,
    },
}

/// The stream broke: the complete documents received since the last batch, which
/// may be committed before reporting, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Broken {
    /// Complete documents received before the break, in order.
    pub pending: Batch,
    /// What broke the stream.
    pub error: ProtocolError,
}

/// Where the exchange stands. Each state holds exactly the data it needs.
#[derive(Debug)]
enum State {
    /// Nothing received yet.
    AwaitHeader,
    /// Header seen; documents are collected into `pending` until a batch fills.
    Documents { pending: Batch },
    /// The end (or an error frame) was delivered; nothing more may follow.
    Finished,
    /// An error was returned; the receiver refuses further input.
    Failed,
}

/// The receiving state machine of one exchange direction. See the module doc.
#[derive(Debug)]
pub struct Receiver<D: Direction> {
    decoder: FrameDecoder,
    state: State,
    limits: BatchLimits,
    direction: std::marker::PhantomData<D>,
}

impl<D: Direction> Default for Receiver<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Direction> Receiver<D> {
    /// A receiver with the default batch limits.
    pub fn new() -> Self {
        Self::with_limits(BatchLimits::DEFAULT)
    }

    /// A receiver closing batches at `limits`.
    pub fn with_limits(limits: BatchLimits) -> Self {
        Receiver {
            decoder: FrameDecoder::new(),
            state: State::AwaitHeader,
            limits,
            direction: std::marker::PhantomData,
        }
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// Whether the end (or an error frame) has been delivered.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Advances as far as the bytes pushed so far allow.
    ///
    /// # Errors
    /// [`Broken`] for a malformed frame, a frame out of order (a document before the
    /// header, anything after the end, an error frame in a request), or any call after
    /// an earlier error. It carries the complete documents not yet delivered.
    pub fn poll(&mut self) -> Result<Step<D::Header>, Broken> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Failed);
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    self.state = state;
                    return Ok(Step::NeedInput);
                }
                Err(error) => return Err(broken(state, error)),
            };
            let step = match (state, frame) {
                (State::AwaitHeader, frame) => match D::header(frame) {
                    Ok(header) => {
                        self.state = State::Documents {
                            pending: Batch::default(),
                        };
                        Step::Header(header)
                    }
                    Err(other) => {
                        return Err(unexpected(State::AwaitHeader, D::HEADER_NAME, &other));
                    }
                },
                (State::Documents { mut pending }, Frame::Doc(doc)) => {
                    pending.push(doc);
                    if self.limits.is_full(pending.len(), pending.payload_bytes()) {
                        self.state = State::Documents {
                            pending: Batch::default(),
                        };
                        Step::Batch(pending)
                    } else {
                        // Not full: keep decoding what is already buffered.
                        self.state = State::Documents { pending };
                        continue;
                    }
                }
                (State::Documents { pending }, Frame::End(end)) => {
                    self.state = State::Finished;
                    Step::End { last: pending, end }
                }
                (State::Documents { pending }, Frame::Error(error)) if D::ACCEPTS_ERROR_FRAME => {
                    self.state = State::Finished;
                    Step::PeerError {
                        last: pending,
                        error,
                    }
                }
                (state @ State::Documents { .. }, other) => {
                    return Err(unexpected(state, "document or end", &other));
                }
                (state @ (State::Finished | State::Failed), other) => {
                    return Err(unexpected(state, "end of stream", &other));
                }
            };
            return Ok(step);
        }
    }

    /// Call once the byte stream has ended.
    ///
    /// # Errors
    /// [`Broken`] with [`ProtocolError::UnexpectedEof`] when the stream was cut before
    /// its end frame or in the middle of a frame, carrying the complete documents not
    /// yet delivered; [`ProtocolError::TrailingBytes`] when bytes follow the end.
    pub fn finish(self) -> Result<(), Broken> {
        match self.state {
            State::Finished if self.decoder.buffered() == 0 => Ok(()),
            State::Finished => Err(Broken {
                pending: Batch::default(),
                error: ProtocolError::TrailingBytes("end"),
            }),
            state => Err(broken(state, ProtocolError::UnexpectedEof)),
        }
    }
}

fn broken(state: State, error: ProtocolError) -> Broken {
    let pending = match state {
        State::Documents { pending } => pending,
        State::AwaitHeader | State::Finished | State::Failed => Batch::default(),
    };
    Broken { pending, error }
}

fn unexpected(state: State, expected: &'static str, got: &Frame) -> Broken {
    broken(
        state,
        ProtocolError::UnexpectedFrame {
            expected,
            got: got.kind().name(),
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::error_kind::ErrorKind;

    fn doc(generation: u64) -> DocFrame {
        DocFrame {
            id: format!("id{generation}"),
            rev: format!("r:{generation}"),
            generation,
            trans_id: format!("T-{generation}"),
            payload: vec![7; 10].into(),
        }
    }

    fn request_header() -> Frame {
        Frame::RequestHeader(ExchangeRequestHeader {
            last_known_generation: 3,
            last_known_trans_id: "T-3".into(),
            ensure: false,
        })
    }

    fn response_header() -> Frame {
        Frame::ResponseHeader(ExchangeResponseHeader {
            target_replica_uid: "target".into(),
            target_generation: 9,
            target_transaction_id: "T-9".into(),
            document_count: 2,
        })
    }

    fn end(generation: u64) -> Frame {
        Frame::End(ExchangeEnd {
            generation,
            transaction_id: format!("T-{generation}"),
        })
    }

    fn wire(frames: &[Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            frame.encode(&mut out).unwrap();
        }
        out
    }

    /// Drives a receiver over `bytes` fed in one piece; collects the steps.
    fn run<D: Direction>(
        limits: BatchLimits,
        bytes: &[u8],
    ) -> (Vec<Step<D::Header>>, Result<(), Broken>) {
        let mut receiver = Receiver::<D>::with_limits(limits);
        receiver.push(bytes);
        let mut steps = Vec::new();
        loop {
            match receiver.poll() {
                Ok(Step::NeedInput) => break,
                Ok(step) => steps.push(step),
                Err(e) => return (steps, Err(e)),
            }
        }
        (steps, receiver.finish())
    }

    #[test]
    fn a_request_yields_header_full_batches_then_the_rest_with_the_end() {
        let limits = BatchLimits {
            docs: 2,
            bytes: 1 << 20,
        };
        let bytes = wire(&[
            request_header(),
            Frame::Doc(doc(1)),
            Frame::Doc(doc(2)),
            Frame::Doc(doc(3)),
            end(3),
        ]);
        let (steps, finished) = run::<Request>(limits, &bytes);
        assert!(finished.is_ok());
        assert_eq!(steps.len(), 3);
        assert!(matches!(&steps[0], Step::Header(h) if h.last_known_generation == 3));
        let Step::Batch(batch) = &steps[1] else {
            panic!("{:?}", steps[1])
        };
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.last_position(), Some((2, "T-2")));
        let Step::End { last, end } = &steps[2] else {
            panic!("{:?}", steps[2])
        };
        assert_eq!(last.docs(), &[doc(3)]);
        assert_eq!(end.generation, 3);
    }

    #[test]
    fn a_batch_closes_early_on_bytes() {
        let limits = BatchLimits {
            docs: 100,
            bytes: 15,
        };
        let bytes = wire(&[
            request_header(),
            Frame::Doc(doc(1)),
            Frame::Doc(doc(2)),
            end(2),
        ]);
        let (steps, finished) = run::<Request>(limits, &bytes);
        assert!(finished.is_ok());
        assert!(matches!(&steps[1], Step::Batch(b) if b.len() == 2 && b.payload_bytes() == 20));
        assert!(matches!(&steps[2], Step::End { last, .. } if last.is_empty()));
    }

    #[test]
    fn an_empty_exchange_is_header_and_end() {
        let bytes = wire(&[response_header(), end(9)]);
        let (steps, finished) = run::<Response>(BatchLimits::DEFAULT, &bytes);
        assert!(finished.is_ok());
        assert!(matches!(&steps[0], Step::Header(h) if h.target_replica_uid == "target"));
        assert!(
            matches!(&steps[1], Step::End { last, end } if last.is_empty() && end.generation == 9)
        );
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_steps() {
        let bytes = wire(&[
            response_header(),
            Frame::Doc(doc(1)),
            Frame::Doc(doc(2)),
            end(2),
        ]);
        let (whole, _) = run::<Response>(BatchLimits::DEFAULT, &bytes);
        for cut in 0..bytes.len() {
            let mut receiver = Receiver::<Response>::new();
            let mut steps = Vec::new();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                receiver.push(piece);
                loop {
                    match receiver.poll().unwrap() {
                        Step::NeedInput => break,
                        step => steps.push(step),
                    }
                }
            }
            assert_eq!(steps, whole, "cut at {cut}");
            assert!(receiver.finish().is_ok());
        }
    }

    #[test]
    fn a_cut_stream_hands_back_the_complete_documents() {
        let mut bytes = wire(&[request_header(), Frame::Doc(doc(1)), Frame::Doc(doc(2))]);
        let partial = wire(&[Frame::Doc(doc(3))]);
        bytes.extend_from_slice(&partial[..partial.len() - 1]);
        let (steps, finished) = run::<Request>(BatchLimits::DEFAULT, &bytes);
        assert_eq!(steps.len(), 1);
        let broken = finished.unwrap_err();
        assert_eq!(broken.error, ProtocolError::UnexpectedEof);
        assert_eq!(broken.pending.docs(), &[doc(1), doc(2)]);
    }

    #[test]
    fn a_stream_cut_before_the_header_or_at_a_frame_boundary_is_eof() {
        for frames in [
            vec![],
            vec![request_header()],
            vec![request_header(), Frame::Doc(doc(1))],
        ] {
            let (_, finished) = run::<Request>(BatchLimits::DEFAULT, &wire(&frames));
            assert_eq!(finished.unwrap_err().error, ProtocolError::UnexpectedEof);
        }
    }

    #[test]
    fn an_error_frame_ends_a_response_with_the_documents_before_it() {
        let error = ErrorBody::new(ErrorKind::QuotaExceeded, "disk");
        let bytes = wire(&[
            response_header(),
            Frame::Doc(doc(1)),
            Frame::Error(error.clone()),
        ]);
        let (steps, finished) = run::<Response>(BatchLimits::DEFAULT, &bytes);
        assert!(finished.is_ok());
        assert_eq!(
            steps[1],
            Step::PeerError {
                last: Batch {
                    docs: vec![doc(1)],
                    bytes: 10
                },
                error
            }
        );
    }

    #[test]
    fn an_error_frame_is_not_part_of_a_request() {
        let error = ErrorBody::new(ErrorKind::QuotaExceeded, "x");
        let bytes = wire(&[request_header(), Frame::Doc(doc(1)), Frame::Error(error)]);
        let (_, finished) = run::<Request>(BatchLimits::DEFAULT, &bytes);
        let broken = finished.unwrap_err();
        assert_eq!(broken.pending.len(), 1);
        assert!(matches!(
            broken.error,
            ProtocolError::UnexpectedFrame { got: "error", .. }
        ));
    }

    #[test]
    fn frames_out_of_order_are_refused_naming_what_was_expected() {
        let cases: Vec<(Vec<Frame>, &str, &str)> = vec![
            (vec![Frame::Doc(doc(1))], "request header", "document"),
            (vec![end(1)], "request header", "end"),
            (vec![response_header()], "request header", "response header"),
            (
                vec![request_header(), request_header()],
                "document or end",
                "request header",
            ),
            (
                vec![request_header(), end(1), Frame::Doc(doc(2))],
                "end of stream",
                "document",
            ),
            (
                vec![request_header(), end(1), end(1)],
                "end of stream",
                "end",
            ),
        ];
        for (frames, expected, got) in cases {
            let (_, finished) = run::<Request>(BatchLimits::DEFAULT, &wire(&frames));
            assert_eq!(
                finished.unwrap_err().error,
                ProtocolError::UnexpectedFrame { expected, got },
                "{frames:?}"
            );
        }
        let (_, finished) = run::<Response>(BatchLimits::DEFAULT, &wire(&[request_header()]));
        assert!(matches!(
            finished.unwrap_err().error,
            ProtocolError::UnexpectedFrame {
                expected: "response header",
                ..
            }
        ));
    }

    #[test]
    fn trailing_garbage_after_the_end_is_refused() {
        let mut bytes = wire(&[request_header(), end(0)]);
        bytes.push(0x02);
        let (steps, finished) = run::<Request>(BatchLimits::DEFAULT, &bytes);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            finished.unwrap_err().error,
            ProtocolError::TrailingBytes("end")
        );
    }

    #[test]
    fn a_malformed_frame_fails_and_the_receiver_stays_failed() {
        let mut receiver = Receiver::<Request>::new();
        receiver.push(&wire(&[request_header(), Frame::Doc(doc(1))]));
        receiver.push(&[0x7f, 0, 0, 0, 0]);
        assert!(matches!(receiver.poll(), Ok(Step::Header(_))));
        let broken = receiver.poll().unwrap_err();
        assert_eq!(broken.error, ProtocolError::UnknownFrameKind(0x7f));
        assert_eq!(broken.pending.len(), 1);
        assert!(receiver.poll().is_err());
        assert!(!receiver.is_finished());
    }
}
