//! Errors raised while decoding wire data.

/// Why bytes received from the peer could not be decoded.
///
/// Every variant describes malformed input; none carries the input itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame announced a length above [`crate::MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Limit.
        max: u64,
    },
    /// A frame to send has a text field longer than its `u16` length allows
    /// ([`crate::MAX_FRAME_FIELD_BYTES`]); it is refused, never cut.
    #[error("field {field} of {len} bytes does not fit a frame")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The frame kind byte is not one this version knows.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownFrameKind(u8),
    /// A frame body ended before all of its fields were read.
    #[error("truncated {0} frame")]
    Truncated(&'static str),
    /// A frame body had bytes left over after its last field.
    #[error("trailing bytes after {0} frame")]
    TrailingBytes(&'static str),
    /// A text field is not valid UTF-8.
    #[error("field {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A JSON frame or body does not have the expected shape.
    #[error("malformed {what}: {reason}")]
    MalformedJson {
        /// Which message was being read.
        what: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// The stream ended in the middle of a frame, or without its end frame.
    #[error("stream ended unexpectedly")]
    UnexpectedEof,
    /// A frame arrived where the exchange expected another kind.
    #[error("expected {expected}, got {got}")]
    UnexpectedFrame {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// The `Authorization` header is not `Token base64(uuid:token)`.
    #[error("malformed Authorization header")]
    MalformedAuthorization,
}
