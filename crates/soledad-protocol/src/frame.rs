//! Length-delimited frames of the streamed sync exchange and their incremental decoder.
//!
//! A frame is `kind (1 byte) ‖ body length (u32, big endian) ‖ body`. JSON frames carry
//! small metadata; document frames carry an opaque payload (the client's envelope) as raw
//! bytes, never base64.

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::{Reader, fits_short, put_short_bytes};
use crate::error::ProtocolError;
use crate::error_kind::ErrorBody;
use crate::sync::{ExchangeEnd, ExchangeRequestHeader, ExchangeResponseHeader};

/// Largest frame body accepted, in bytes. Bounds the memory one frame can make a peer
/// allocate; documents larger than this cannot be synchronised.
pub const MAX_FRAME_LEN: u32 = 64 * 1024 * 1024;

const HEADER_LEN: usize = 5;

/// The kind byte at the start of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Source → target: [`ExchangeRequestHeader`], first frame of a request.
    RequestHeader = 0x01,
    /// Either way: one document, [`DocFrame`].
    Doc = 0x02,
    /// Either way: [`ExchangeEnd`], the last frame of a request or response.
    End = 0x03,
    /// Target → source: [`ExchangeResponseHeader`], first frame of a response.
    ResponseHeader = 0x10,
    /// Target → source: an [`ErrorBody`] that aborts the response mid-stream.
    Error = 0x11,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Result<Self, ProtocolError> {
        Ok(match byte {
            0x01 => FrameKind::RequestHeader,
            0x02 => FrameKind::Doc,
            0x03 => FrameKind::End,
            0x10 => FrameKind::ResponseHeader,
            0x11 => FrameKind::Error,
            other => return Err(ProtocolError::UnknownFrameKind(other)),
        })
    }

    /// A short name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::RequestHeader => "request header",
            FrameKind::Doc => "document",
            FrameKind::End => "end",
            FrameKind::ResponseHeader => "response header",
            FrameKind::Error => "error",
        }
    }
}

/// One document as it travels: hidden id, revision, the sender's generation and
/// transaction id for it, and the opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFrame {
    /// The id as the server knows it (for Soledad clients: the hidden id).
    pub id: String,
    /// The revision (vector clock) in u1db's text form.
    pub rev: String,
    /// The sender's generation at which this revision was written.
    pub generation: u64,
    /// The sender's transaction id for that generation.
    pub trans_id: String,
    /// The payload: for Soledad clients, always a sealed envelope (tombstones included).
    pub payload: Bytes,
}

impl DocFrame {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        self.check_fits()?;
        put_short_bytes(out, "id", self.id.as_bytes())?;
        put_short_bytes(out, "rev", self.rev.as_bytes())?;
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_short_bytes(out, "trans_id", self.trans_id.as_bytes())?;
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    fn decode_body(body: Bytes) -> Result<Self, ProtocolError> {
        const WHAT: &str = "document";
        let mut reader = Reader::new(&body);
        let id = text(reader.short_bytes(), "id")?;
        let rev = text(reader.short_bytes(), "rev")?;
        let generation = reader.u64().ok_or(ProtocolError::Truncated(WHAT))?;
        let trans_id = text(reader.short_bytes(), "trans_id")?;
        let payload_len = reader.rest().len();
        let payload = body.slice(body.len() - payload_len..);
        Ok(DocFrame {
            id,
            rev,
            generation,
            trans_id,
            payload,
        })
    }

    /// Refuses a document that [`DocFrame::fits`] says cannot be sent, naming why.
    ///
    /// # Errors
    /// [`ProtocolError::FieldTooLong`] for a text field over 65535 bytes,
    /// [`ProtocolError::FrameTooLarge`] for a body over [`MAX_FRAME_LEN`].
    pub fn check_fits(&self) -> Result<(), ProtocolError> {
        for (field, text) in [
            ("id", &self.id),
            ("rev", &self.rev),
            ("trans_id", &self.trans_id),
        ] {
            if !fits_short(text.as_bytes()) {
                return Err(ProtocolError::FieldTooLong {
                    field,
                    len: text.len(),
                });
            }
        }
        let len = self.encoded_body_len();
        if len > MAX_FRAME_LEN as usize {
            return Err(ProtocolError::FrameTooLarge {
                len: u64::try_from(len).unwrap_or(u64::MAX),
                max: u64::from(MAX_FRAME_LEN),
            });
        }
        Ok(())
    }

    /// Whether the text fields fit the frame format (each at most 65535 bytes).
    pub fn fits(&self) -> bool {
        fits_short(self.id.as_bytes())
            && fits_short(self.rev.as_bytes())
            && fits_short(self.trans_id.as_bytes())
            && self.encoded_body_len() <= MAX_FRAME_LEN as usize
    }

    fn encoded_body_len(&self) -> usize {
        6 + 8 + self.id.len() + self.rev.len() + self.trans_id.len() + self.payload.len()
    }
}

fn text(field: Option<&[u8]>, name: &'static str) -> Result<String, ProtocolError> {
    let bytes = field.ok_or(ProtocolError::Truncated("document"))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtocolError::InvalidUtf8(name))
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// See [`FrameKind::RequestHeader`].
    RequestHeader(ExchangeRequestHeader),
    /// See [`FrameKind::Doc`].
    Doc(DocFrame),
    /// See [`FrameKind::End`].
    End(ExchangeEnd),
    /// See [`FrameKind::ResponseHeader`].
    ResponseHeader(ExchangeResponseHeader),
    /// See [`FrameKind::Error`].
    Error(ErrorBody),
}

impl Frame {
    /// The kind byte of this frame.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::RequestHeader(_) => FrameKind::RequestHeader,
            Frame::Doc(_) => FrameKind::Doc,
            Frame::End(_) => FrameKind::End,
            Frame::ResponseHeader(_) => FrameKind::ResponseHeader,
            Frame::Error(_) => FrameKind::Error,
        }
    }

    /// Appends the encoded frame to `out`.
    ///
    /// A frame that does not fit (a document field over 65535 bytes, a body over
    /// [`MAX_FRAME_LEN`]) is refused and `out` left as it was: nothing is ever cut.
    ///
    /// # Errors
    /// [`ProtocolError::FieldTooLong`], [`ProtocolError::FrameTooLarge`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let start = out.len();
        let encoded = self.encode_at(out, start);
        if encoded.is_err() {
            out.truncate(start);
        }
        encoded
    }

    fn encode_at(&self, out: &mut Vec<u8>, start: usize) -> Result<(), ProtocolError> {
        out.push(self.kind() as u8);
        out.extend_from_slice(&[0; 4]);
        match self {
            Frame::RequestHeader(h) => json_into(out, h),
            Frame::Doc(d) => d.encode_body(out)?,
            Frame::End(e) => json_into(out, e),
            Frame::ResponseHeader(h) => json_into(out, h),
            Frame::Error(e) => json_into(out, e),
        }
        let len = out.len().saturating_sub(start + HEADER_LEN);
        let body_len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_FRAME_LEN)
            .ok_or(ProtocolError::FrameTooLarge {
                len: u64::try_from(len).unwrap_or(u64::MAX),
                max: u64::from(MAX_FRAME_LEN),
            })?;
        if let Some(len_field) = out.get_mut(start + 1..start + HEADER_LEN) {
            len_field.copy_from_slice(&body_len.to_be_bytes());
        }
        Ok(())
    }

    /// The encoded frame as a fresh buffer.
    ///
    /// # Errors
    /// As [`Frame::encode`].
    pub fn to_bytes(&self) -> Result<Bytes, ProtocolError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out.into())
    }

    fn decode(kind: FrameKind, body: Bytes) -> Result<Self, ProtocolError> {
        Ok(match kind {
            FrameKind::RequestHeader => Frame::RequestHeader(json_from(&body, kind)?),
            FrameKind::Doc => Frame::Doc(DocFrame::decode_body(body)?),
            FrameKind::End => Frame::End(json_from(&body, kind)?),
            FrameKind::ResponseHeader => Frame::ResponseHeader(json_from(&body, kind)?),
            FrameKind::Error => Frame::Error(json_from(&body, kind)?),
        })
    }
}

fn json_into<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    // Serialising these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

fn json_from<T: serde::de::DeserializeOwned>(
    body: &[u8],
    kind: FrameKind,
) -> Result<T, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| ProtocolError::MalformedJson {
        what: kind.name(),
        reason: e.to_string(),
    })
}

/// Incremental, sans-I/O frame decoder: push bytes as they arrive, pull whole frames.
///
/// Memory grows only with the bytes pushed (never with a length a header
/// announces) and is bounded by one frame ([`MAX_FRAME_LEN`]) plus one push.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, or `None` if more bytes are needed.
    ///
    /// # Errors
    /// [`ProtocolError`] when the buffered bytes cannot start a valid frame (unknown
    /// kind, oversized length) or a complete frame's body is malformed. The decoder is
    /// not usable after an error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let Some(header) = self.buffer.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut header = Reader::new(header);
        let kind_byte = header.take(1).and_then(|b| b.first().copied());
        let len_bytes = header.take(4).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let (Some(kind_byte), Some(len_bytes)) = (kind_byte, len_bytes) else {
            return Ok(None);
        };
        let kind = FrameKind::from_byte(kind_byte)?;
        let len = u32::from_be_bytes(len_bytes);
        if len > MAX_FRAME_LEN {
            return Err(ProtocolError::FrameTooLarge {
                len: u64::from(len),
                max: u64::from(MAX_FRAME_LEN),
            });
        }
        let body_len = usize::try_from(len).map_err(|_| ProtocolError::FrameTooLarge {
            len: u64::from(len),
            max: u64::from(MAX_FRAME_LEN),
        })?;
        // Never reserve the announced length: a header alone must not make us
        // allocate up to MAX_FRAME_LEN. The buffer grows as bytes arrive.
        if self.buffer.len() < HEADER_LEN.saturating_add(body_len) {
            return Ok(None);
        }
        self.buffer.advance(HEADER_LEN);
        let body = self.buffer.split_to(body_len).freeze();
        Frame::decode(kind, body).map(Some)
    }

    /// Call when the byte stream has ended: errors if a partial frame is left over.
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedEof`] if bytes of an incomplete frame remain.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::UnexpectedEof)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_large_announced_length_allocates_nothing_until_bytes_arrive() {
        let mut decoder = FrameDecoder::new();
        let mut header = vec![FrameKind::Doc as u8];
        header.extend_from_slice(&MAX_FRAME_LEN.to_be_bytes());
        decoder.push(&header);
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert!(decoder.buffer.capacity() < 64 * 1024);
        decoder.push(&[0; 1000]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert!(decoder.buffer.capacity() < 64 * 1024);
        assert_eq!(decoder.finish(), Err(ProtocolError::UnexpectedEof));
    }

    #[test]
    fn a_frame_split_in_small_pushes_decodes_once_complete() {
        let frame = Frame::End(ExchangeEnd {
            generation: 7,
            transaction_id: "T-1".to_owned(),
        });
        let bytes = frame.to_bytes().unwrap();
        let mut decoder = FrameDecoder::new();
        for (i, byte) in bytes.iter().enumerate() {
            decoder.push(&[*byte]);
            let decoded = decoder.next_frame().unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(decoded, None);
            } else {
                assert_eq!(decoded, Some(frame.clone()));
            }
        }
        assert_eq!(decoder.buffered(), 0);
    }
}
