//! A bounds-checked cursor over untrusted bytes and the matching writers.

use crate::error::ProtocolError;

/// Reads fields front to back from a byte slice; every read is checked.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The next `n` bytes, or `None` if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes(b.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_be_bytes(b.try_into().ok()?))
    }

    /// A `u16`-length-prefixed byte string.
    pub(crate) fn short_bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// Appends a `u16`-length-prefixed byte string, or refuses one longer than
/// `u16::MAX` bytes (never cuts it).
///
/// # Errors
/// [`ProtocolError::FieldTooLong`] naming `field`; nothing is appended then.
pub(crate) fn put_short_bytes(
    out: &mut Vec<u8>,
    field: &'static str,
    bytes: &[u8],
) -> Result<(), ProtocolError> {
    let len = u16::try_from(bytes.len()).map_err(|_| ProtocolError::FieldTooLong {
        field,
        len: bytes.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Whether `bytes` can be written with [`put_short_bytes`] without being cut.
pub(crate) fn fits_short(bytes: &[u8]) -> bool {
    bytes.len() <= usize::from(u16::MAX)
}
