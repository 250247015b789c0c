//! The I/O-free state machine that the sync and async stream adapters share.
//!
//! A [`Pump`] owns one segment-sized buffer. The adapter asks for the
//! [`next_action`](Pump::next_action), fills the offered space from its reader, reports how many bytes
//! came with [`feed`](Pump::feed) (0 = end of input), and drains
//! [`output`](Pump::output). Whole units (preamble, segments) are handed to a
//! [`Step`], which transforms them in place. Memory stays at one segment.

use crate::error::{Error, Result};
use crate::keys::BlobKey;
use crate::preamble::{FIXED_LEN, Preamble};
use crate::stream::{BlobDecryptor, BlobEncryptor, SEALED_SEGMENT_SIZE};

/// One direction of the stream: how many input bytes the next unit needs and how
/// to turn that unit into output.
pub(crate) trait Step {
    /// Input bytes of the next unit (possibly 0), or `None` when no more input is
    /// expected.
    fn need(&self) -> Option<usize>;
    /// Transforms one complete unit in place.
    fn process(&mut self, buf: &mut Vec<u8>) -> Result<()>;
    /// The error for an input that ends inside a unit.
    fn truncated(&self) -> Error;
    /// The error for input left over after the last unit.
    fn trailing(&self) -> Error;
}

/// The next thing a stream adapter must do.
pub(crate) enum Action<'a> {
    /// Read input into this (non-empty) slice, then call [`Pump::feed`].
    Read(&'a mut [u8]),
    /// Output is ready: drain [`Pump::output`].
    Drain,
    /// The stream is complete.
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting `need` bytes into `buf[..filled]`.
    Filling {
        need: usize,
    },
    /// Handing out `buf[out_pos..]`.
    Draining,
    /// All units done; one more read must report end of input.
    CheckEof,
    Done,
    Failed,
}

pub(crate) struct Pump<S> {
    step: S,
    buf: Vec<u8>,
    filled: usize,
    out_pos: usize,
    phase: Phase,
}

impl<S: Step> Pump<S> {
    /// A pump whose first output is `initial` (e.g. the encoded preamble).
    pub(crate) fn new(step: S, initial: Vec<u8>, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(initial.len()));
        buf.extend_from_slice(&initial);
        Self {
            step,
            buf,
            filled: 0,
            out_pos: 0,
            phase: Phase::Draining,
        }
    }

    pub(crate) fn step(&self) -> &S {
        &self.step
    }

    /// Bytes ready for the consumer (empty when input is needed or all is done).
    pub(crate) fn output(&self) -> &[u8] {
        match self.phase {
            Phase::Draining => self.buf.get(self.out_pos..).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Marks `n` output bytes as handed out.
    pub(crate) fn consume(&mut self, n: usize) {
        if self.phase == Phase::Draining {
            self.out_pos = self.out_pos.saturating_add(n).min(self.buf.len());
        }
    }

    /// What the adapter must do next. Only call with [`output`](Self::output) empty.
    ///
    /// # Errors
    /// Any error of the step; a stream that already failed fails again.
    pub(crate) fn next_action(&mut self) -> Result<Action<'_>> {
        if self.phase == Phase::Draining && self.out_pos >= self.buf.len() {
            self.advance()?;
        }
        match self.phase {
            Phase::Filling { need } => match self.buf.get_mut(self.filled..need) {
                Some(space) => Ok(Action::Read(space)),
                None => Err(poisoned()),
            },
            Phase::CheckEof => {
                self.buf.clear();
                self.buf.push(0);
                Ok(Action::Read(self.buf.as_mut_slice()))
            }
            // A unit that needed no input (the empty last segment) produced output.
            Phase::Draining => Ok(Action::Drain),
            Phase::Done => Ok(Action::Done),
            Phase::Failed => Err(poisoned()),
        }
    }

    /// Reports that `n` bytes were read into the last [`Action::Read`] slice;
    /// `n == 0` means the input ended.
    ///
    /// # Errors
    /// The step's truncation/trailing errors, or its processing error.
    pub(crate) fn feed(&mut self, n: usize) -> Result<()> {
        let result = self.feed_inner(n);
        if result.is_err() {
            self.phase = Phase::Failed;
            self.buf.clear();
        }
        result
    }

    fn feed_inner(&mut self, n: usize) -> Result<()> {
        match self.phase {
            Phase::Filling { need } => {
                if n == 0 {
                    return Err(self.step.truncated());
                }
                self.filled = self.filled.saturating_add(n).min(need);
                if self.filled == need {
                    self.finish_unit()?;
                }
                Ok(())
            }
            Phase::CheckEof => {
                if n == 0 {
                    self.phase = Phase::Done;
                    self.buf.clear();
                    Ok(())
                } else {
                    Err(self.step.trailing())
                }
            }
            Phase::Failed => Err(poisoned()),
            Phase::Draining | Phase::Done => Ok(()),
        }
    }

    /// Moves to the next unit once the output is drained.
    fn advance(&mut self) -> Result<()> {
        match self.step.need() {
            Some(need) => {
                self.buf.clear();
                self.buf.resize(need, 0);
                self.filled = 0;
                self.phase = Phase::Filling { need };
                if need == 0 {
                    self.finish_unit()?;
                }
            }
            None => self.phase = Phase::CheckEof,
        }
        Ok(())
    }

    fn finish_unit(&mut self) -> Result<()> {
        let result = self.step.process(&mut self.buf);
        if result.is_err() {
            self.phase = Phase::Failed;
            self.buf.clear();
            return result;
        }
        self.out_pos = 0;
        self.phase = Phase::Draining;
        Ok(())
    }
}

fn poisoned() -> Error {
    Error::Io(std::io::Error::other("blob stream already failed"))
}

/// Plaintext in, preamble + sealed segments out.
pub(crate) struct EncryptStep(pub(crate) BlobEncryptor);

impl Step for EncryptStep {
    fn need(&self) -> Option<usize> {
        self.0.next_segment_len()
    }
    fn process(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.0.seal_next(buf)
    }
    fn truncated(&self) -> Error {
        Error::SizeMismatch
    }
    fn trailing(&self) -> Error {
        Error::SizeMismatch
    }
}

pub(crate) fn encrypt_pump(enc: BlobEncryptor) -> Pump<EncryptStep> {
    let preamble = enc.preamble_bytes().to_vec();
    Pump::new(EncryptStep(enc), preamble, SEALED_SEGMENT_SIZE)
}

enum DecryptState {
    Fixed,
    Rest { fixed: Vec<u8>, total: usize },
    Body(Box<BlobDecryptor>),
}

/// Preamble + sealed segments in, plaintext out.
pub(crate) struct DecryptStep {
    key: BlobKey,
    expected_blob_id: String,
    state: DecryptState,
}

impl DecryptStep {
    pub(crate) fn preamble(&self) -> Option<&Preamble> {
        match &self.state {
            DecryptState::Body(dec) => Some(dec.preamble()),
            _ => None,
        }
    }
}

impl Step for DecryptStep {
    fn need(&self) -> Option<usize> {
        match &self.state {
            DecryptState::Fixed => Some(FIXED_LEN),
            DecryptState::Rest { fixed, total } => Some(total.saturating_sub(fixed.len())),
            DecryptState::Body(dec) => dec.next_sealed_len(),
        }
    }

    fn process(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        match &mut self.state {
            DecryptState::Fixed => {
                let total = Preamble::len_from_fixed(buf)?;
                self.state = DecryptState::Rest {
                    fixed: std::mem::take(buf),
                    total,
                };
            }
            DecryptState::Rest { fixed, .. } => {
                fixed.extend_from_slice(buf);
                let (preamble, _) = Preamble::parse(fixed)?;
                let dec = self.key.decryptor(&preamble, &self.expected_blob_id)?;
                self.state = DecryptState::Body(Box::new(dec));
                buf.clear();
            }
            DecryptState::Body(dec) => dec.open_next(buf)?,
        }
        Ok(())
    }

    fn truncated(&self) -> Error {
        match self.state {
            DecryptState::Body(_) => Error::Integrity,
            _ => Error::Malformed {
                what: "blob preamble",
            },
        }
    }

    fn trailing(&self) -> Error {
        Error::Integrity
    }
}

pub(crate) fn decrypt_pump(key: &BlobKey, expected_blob_id: &str) -> Pump<DecryptStep> {
    let step = DecryptStep {
        key: key.clone(),
        expected_blob_id: expected_blob_id.to_owned(),
        state: DecryptState::Fixed,
    };
    Pump::new(step, Vec::new(), SEALED_SEGMENT_SIZE)
}
