//! Blocking adapters over `std::io::Read`/`Write` for the blob stream.
//!
//! Both directions are readers (so they plug into `io::copy`, HTTP bodies, files),
//! plus two helpers that pump a reader into a writer without an extra copy.
//! Crypto failures surface as `io::Error`s of kind `InvalidData` wrapping
//! [`Error`]; `Error::from(io_error)` gets the typed error back.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::keys::BlobKey;
use crate::preamble::Preamble;
use crate::pump::{Action, DecryptStep, EncryptStep, Pump, Step, decrypt_pump, encrypt_pump};

/// Reads plaintext from `R` and yields the stored blob: preamble, then sealed
/// segments. Fails with [`Error::SizeMismatch`] if `R` does not yield exactly the
/// declared size.
pub struct EncryptReader<R> {
    inner: R,
    pump: Pump<EncryptStep>,
}

impl<R: Read> EncryptReader<R> {
    /// Encrypts `plaintext_size` bytes of `inner` as blob `blob_id`.
    ///
    /// # Errors
    /// As [`BlobKey::encryptor`].
    pub fn new(key: &BlobKey, blob_id: &str, plaintext_size: u64, inner: R) -> Result<Self> {
        let enc = key.encryptor(blob_id, plaintext_size)?;
        Ok(Self {
            inner,
            pump: encrypt_pump(enc),
        })
    }

    /// The preamble of the blob being produced.
    pub fn preamble(&self) -> &Preamble {
        self.pump.step().0.preamble()
    }

    /// Total bytes this reader yields (preamble + body).
    pub fn stored_len(&self) -> u64 {
        let preamble = self.preamble();
        (preamble.encoded_len() as u64).saturating_add(preamble.body_len())
    }
}

impl<R: Read> Read for EncryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through(&mut self.inner, &mut self.pump, out)
    }
}

/// Reads a stored blob (preamble + sealed segments) from `R` and yields its
/// plaintext, checking every segment. The stream ends with an error
/// ([`Error::Integrity`]) if it was truncated, extended, reordered or altered;
/// a consumer must discard everything it read when any read fails.
pub struct DecryptReader<R> {
    inner: R,
    pump: Pump<DecryptStep>,
}

impl<R: Read> DecryptReader<R> {
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

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through(&mut self.inner, &mut self.pump, out)
    }
}

fn read_through<R: Read, S: Step>(
    inner: &mut R,
    pump: &mut Pump<S>,
    out: &mut [u8],
) -> io::Result<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    loop {
        let ready = pump.output();
        if !ready.is_empty() {
            let n = ready.len().min(out.len());
            if let (Some(dst), Some(src)) = (out.get_mut(..n), ready.get(..n)) {
                dst.copy_from_slice(src);
            }
            pump.consume(n);
            return Ok(n);
        }
        let space = match pump.next_action()? {
            Action::Read(space) => space,
            Action::Drain => continue,
            Action::Done => return Ok(0),
        };
        let n = match inner.read(space) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        pump.feed(n)?;
    }
}

fn pump_to_writer<R: Read, W: Write, S: Step>(
    mut reader: R,
    mut writer: W,
    pump: &mut Pump<S>,
) -> Result<()> {
    loop {
        let ready = pump.output();
        if !ready.is_empty() {
            writer.write_all(ready).map_err(Error::Io)?;
            let n = ready.len();
            pump.consume(n);
            continue;
        }
        let space = match pump.next_action()? {
            Action::Read(space) => space,
            Action::Drain => continue,
            Action::Done => break,
        };
        let n = match reader.read(space) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        pump.feed(n)?;
    }
    writer.flush().map_err(Error::Io)
}

/// Encrypts exactly `plaintext_size` bytes from `reader` as blob `blob_id` and
/// writes the stored form (preamble + body) to `writer`. Memory: one segment.
///
/// # Errors
/// [`Error::SizeMismatch`] if the reader yields more or fewer bytes; [`Error::Io`];
/// as [`BlobKey::encryptor`].
pub fn encrypt_blob<R: Read, W: Write>(
    key: &BlobKey,
    blob_id: &str,
    plaintext_size: u64,
    reader: R,
    writer: W,
) -> Result<Preamble> {
    let enc = key.encryptor(blob_id, plaintext_size)?;
    let preamble = enc.preamble().clone();
    let mut pump = encrypt_pump(enc);
    pump_to_writer(reader, writer, &mut pump)?;
    Ok(preamble)
}

/// Decrypts a stored blob from `reader` into `writer`. Plaintext reaches `writer`
/// segment by segment, before the end is verified: on error, discard what was
/// written.
///
/// # Errors
/// [`Error::Integrity`] for any tampering (including truncation and extension);
/// [`Error::ExternalBlob`]; preamble parse errors; [`Error::Io`].
pub fn decrypt_blob<R: Read, W: Write>(
    key: &BlobKey,
    expected_blob_id: &str,
    reader: R,
    writer: W,
) -> Result<Preamble> {
    let mut pump = decrypt_pump(key, expected_blob_id);
    pump_to_writer(reader, writer, &mut pump)?;
    pump.step().preamble().cloned().ok_or(Error::Malformed {
        what: "blob preamble",
    })
}
