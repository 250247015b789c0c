//! Tokio `AsyncRead` adapters for the blob stream (feature `async`), driving the
//! same [`Pump`](crate::pump) as the blocking adapters. They do no blocking work
//! beyond AES-GCM on one 64 KiB segment per poll (≈ 20 µs).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::error::{Error, Result};
use crate::keys::BlobKey;
use crate::preamble::Preamble;
use crate::pump::{Action, DecryptStep, EncryptStep, Pump, Step, decrypt_pump, encrypt_pump};

/// Async twin of [`EncryptReader`](crate::EncryptReader): plaintext in, stored blob out.
pub struct AsyncEncryptReader<R> {
    inner: R,
    pump: Pump<EncryptStep>,
}

impl<R: AsyncRead + Unpin> AsyncEncryptReader<R> {
    /// Encrypts `plaintext_size` bytes of `inner` as blob `blob_id`.
    ///
    /// # Errors
    /// As [`BlobKey::encryptor`].
    pub fn new(key: &BlobKey, blob_id: &str, plaintext_size: u64, inner: R) -> Result<Self> {
        Ok(Self {
            inner,
            pump: encrypt_pump(key.encryptor(blob_id, plaintext_size)?),
        })
    }

    /// The preamble of the blob being produced.
    pub fn preamble(&self) -> &Preamble {
        self.pump.step().0.preamble()
    }

    /// Total bytes this reader yields (preamble + body), e.g. for `Content-Length`.
    pub fn stored_len(&self) -> u64 {
        let preamble = self.preamble();
        (preamble.encoded_len() as u64).saturating_add(preamble.body_len())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncEncryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_through(&mut this.inner, &mut this.pump, cx, out)
    }
}

/// Async twin of [`DecryptReader`](crate::DecryptReader): stored blob in, plaintext out.
pub struct AsyncDecryptReader<R> {
    inner: R,
    pump: Pump<DecryptStep>,
}

impl<R: AsyncRead + Unpin> AsyncDecryptReader<R> {
    /// Decrypts the blob in `inner`, which must be `expected_blob_id`.
    pub fn new(key: &BlobKey, expected_blob_id: &str, inner: R) -> Self {
        Self {
            inner,
            pump: decrypt_pump(key, expected_blob_id),
        }
    }

    /// The preamble, once it has been read.
    pub fn preamble(&self) -> Option<&Preamble> {
        self.pump.step().preamble()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_through(&mut this.inner, &mut this.pump, cx, out)
    }
}

fn poll_through<R: AsyncRead + Unpin, S: Step>(
    inner: &mut R,
    pump: &mut Pump<S>,
    cx: &mut Context<'_>,
    out: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    if out.remaining() == 0 {
        return Poll::Ready(Ok(()));
    }
    loop {
        let ready = pump.output();
        if !ready.is_empty() {
            let n = ready.len().min(out.remaining());
            if let Some(src) = ready.get(..n) {
                out.put_slice(src);
            }
            pump.consume(n);
            return Poll::Ready(Ok(()));
        }
        let space = match pump.next_action()? {
            Action::Read(space) => space,
            Action::Drain => continue,
            Action::Done => return Poll::Ready(Ok(())),
        };
        let mut read_buf = ReadBuf::new(space);
        ready!(Pin::new(&mut *inner).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        pump.feed(n)?;
    }
}

/// Async [`encrypt_blob`](crate::encrypt_blob).
///
/// # Errors
/// As [`encrypt_blob`](crate::encrypt_blob).
pub async fn encrypt_blob_async<R, W>(
    key: &BlobKey,
    blob_id: &str,
    plaintext_size: u64,
    reader: R,
    mut writer: W,
) -> Result<Preamble>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut enc = AsyncEncryptReader::new(key, blob_id, plaintext_size, reader)?;
    copy_all(&mut enc, &mut writer).await?;
    Ok(enc.preamble().clone())
}

/// Async [`decrypt_blob`](crate::decrypt_blob).
///
/// # Errors
/// As [`decrypt_blob`](crate::decrypt_blob).
pub async fn decrypt_blob_async<R, W>(
    key: &BlobKey,
    expected_blob_id: &str,
    reader: R,
    mut writer: W,
) -> Result<Preamble>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut dec = AsyncDecryptReader::new(key, expected_blob_id, reader);
    copy_all(&mut dec, &mut writer).await?;
    dec.preamble().cloned().ok_or(Error::Malformed {
        what: "blob preamble",
    })
}

async fn copy_all<R, W>(reader: &mut R, writer: &mut W) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; crate::stream::SEGMENT_SIZE];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer
            .write_all(buf.get(..n).unwrap_or_default())
            .await
            .map_err(Error::Io)?;
    }
    writer.flush().await.map_err(Error::Io)
}
