//! Byte ranges of a blob read (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`).

use super::error::BlobError;

/// Which bytes of a blob to read; parsed from the HTTP `Range` header by the
/// HTTP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=start-end` (both inclusive) or `bytes=start-` (to the end).
    From {
        /// First byte to read (0-based).
        start: u64,
        /// Last byte to read, inclusive; `None` for the end of the blob.
        /// Clamped to the last byte of the blob.
        end_inclusive: Option<u64>,
    },
    /// `bytes=-len`: the last `len` bytes (the whole blob if it is shorter).
    Suffix {
        /// How many bytes from the end.
        len: u64,
    },
}

impl RangeSpec {
    /// Resolves the range against a blob of `size` bytes into `(start, len)`,
    /// with `len >= 1` and `start + len <= size`.
    ///
    /// # Errors
    /// [`BlobError::RangeNotSatisfiable`] if the range selects no byte of the
    /// blob (start past the end, end before start, empty suffix, empty blob).
    pub fn resolve(self, size: u64) -> Result<(u64, u64), BlobError> {
        let unsatisfiable = BlobError::RangeNotSatisfiable { size };
        let last = size
            .checked_sub(1)
            .ok_or(BlobError::RangeNotSatisfiable { size })?;
        match self {
            RangeSpec::From {
                start,
                end_inclusive,
            } => {
                let end = end_inclusive.map_or(last, |e| e.min(last));
                if start > end {
                    return Err(unsatisfiable);
                }
                Ok((start, end - start + 1))
            }
            RangeSpec::Suffix { len } => {
                if len == 0 {
                    return Err(unsatisfiable);
                }
                let len = len.min(size);
                Ok((size - len, len))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(start: u64, end: Option<u64>) -> RangeSpec {
        RangeSpec::From {
            start,
            end_inclusive: end,
        }
    }

    #[test]
    fn resolves_like_rfc_9110() {
        assert_eq!(from(0, None).resolve(10).unwrap(), (0, 10));
        assert_eq!(from(2, Some(4)).resolve(10).unwrap(), (2, 3));
        assert_eq!(from(9, Some(100)).resolve(10).unwrap(), (9, 1));
        assert_eq!(RangeSpec::Suffix { len: 3 }.resolve(10).unwrap(), (7, 3));
        assert_eq!(RangeSpec::Suffix { len: 30 }.resolve(10).unwrap(), (0, 10));
        for bad in [
            from(10, None),
            from(5, Some(4)),
            RangeSpec::Suffix { len: 0 },
        ] {
            assert!(matches!(
                bad.resolve(10),
                Err(BlobError::RangeNotSatisfiable { size: 10 })
            ));
        }
        assert!(matches!(
            RangeSpec::Suffix { len: 1 }.resolve(0),
            Err(BlobError::RangeNotSatisfiable { size: 0 })
        ));
    }
}
