//! Wire types shared by the Soledad client and server.
//!
//! This crate defines what crosses the network between a Soledad client and a Soledad
//! server, and nothing else: the JSON bodies of the small requests, the binary frames of
//! the streamed sync exchange, the `Authorization` header, and the error kinds with their
//! HTTP status codes. It does no I/O: decoders are fed bytes and return values, so the
//! same code runs in the server, the client and the fuzzers.
//!
//! The format is written down in `docs/protocol.md` at the root of the repository.
//!
//! ```
//! use soledad_protocol::{DocFrame, Frame, FrameDecoder};
//!
//! let doc = DocFrame {
//!     id: "b64-hidden-id".into(),
//!     rev: "replica:1".into(),
//!     generation: 7,
//!     trans_id: "T-abc".into(),
//!     payload: b"ciphertext".to_vec().into(),
//! };
//! let mut wire = Vec::new();
//! Frame::Doc(doc.clone()).encode(&mut wire).unwrap();
//!
//! let mut decoder = FrameDecoder::new();
//! decoder.push(&wire);
//! assert_eq!(decoder.next_frame().unwrap(), Some(Frame::Doc(doc)));
//! ```

#![forbid(unsafe_code)]

mod auth;
mod changes;
mod codec;
mod error;
mod error_kind;
mod frame;
mod limits;
mod receive;
mod sync;

pub use auth::{AUTH_SCHEME, AuthHeader};
pub use changes::{
    CHANGES_PATH, CHANGES_SINCE_PARAM, CHANGES_SOURCE_PARAM, CHANGES_WAIT_PARAM, ChangeKind,
    ChangesResponse, MAX_MARKER_BYTES, is_valid_marker,
};
pub use error::ProtocolError;
pub use error_kind::{ErrorBody, ErrorKind};
pub use frame::{DocFrame, Frame, FrameDecoder, FrameKind, MAX_FRAME_LEN};
pub use limits::{
    BATCH_BYTES, BATCH_DOCS, BatchLimits, MAX_DOC_ID_BYTES, MAX_DOCUMENT_BYTES,
    MAX_FRAME_FIELD_BYTES,
};
pub use receive::{Batch, Broken, Direction, Receiver, Request, Response, Step};
pub use sync::{
    ExchangeEnd, ExchangeRequestHeader, ExchangeResponseHeader, REV_HEADER, RecordSyncInfo,
    SYNC_CONTENT_TYPE, SyncInfo, USER_DB_PREFIX, user_db_name, user_db_uuid,
};
