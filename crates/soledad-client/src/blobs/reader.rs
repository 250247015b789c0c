//! [`BlobReader`]: the plaintext of a local blob, read after it was authenticated
//! whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use soledad_crypto::{AsyncDecryptReader, BlobKey};
use tokio::io::{AsyncRead, BufReader, ReadBuf};

/// Plaintext of a blob, decrypted as it is read. The stored file was
/// authenticated whole before this reader was made; should it change meanwhile,
/// reading fails rather than yield bytes that do not authenticate.
pub struct BlobReader {
    inner: AsyncDecryptReader<BufReader<tokio::fs::File>>,
    size: u64,
}

impl BlobReader {
    pub(crate) fn new(key: &BlobKey, blob_id: &str, file: tokio::fs::File, size: u64) -> Self {
        BlobReader {
            inner: AsyncDecryptReader::new(
                key,
                blob_id,
                BufReader::with_capacity(256 * 1024, file),
            ),
            size,
        }
    }

    /// Plaintext size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}
