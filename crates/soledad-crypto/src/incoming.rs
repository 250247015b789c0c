//! The incoming box seal: a message delivered by a service (the MX) is sealed
//! to the user's incoming X25519 public key in the age format (age-encryption.org/v1,
//! X25519 recipient stanza, ChaCha20-Poly1305 STREAM payload in 64 KiB chunks),
//! so the server stores only ciphertext. Sealing and opening stream with
//! bounded memory.
//!
//! The private key is never stored: it is derived from the storage secret with
//! HKDF-SHA256 (label [`LABEL_INCOMING`], epoch `n > 0` appending `":<n>"`), so
//! every device of the account derives the same one. Rotating means publishing
//! the key of the next epoch; a device opens with every epoch up to the current
//! one, so messages sealed to an older key stay readable.

use std::fmt;
use std::io::{BufRead, Read, Write};
use std::str::FromStr as _;

use bech32::{ToBase32 as _, Variant};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{LABEL_INCOMING, StorageSecret};

/// Highest key epoch (rotations) a device opens with.
pub const MAX_INCOMING_EPOCH: u32 = 1024;

/// Human-readable part of an age secret key (bech32).
const SECRET_KEY_HRP: &str = "age-secret-key-";

/// A user's incoming identity of one epoch: opens messages sealed to its
/// [`public_key`](Self::public_key).
pub struct IncomingIdentity {
    epoch: u32,
    identity: age::x25519::Identity,
}

impl fmt::Debug for IncomingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingIdentity")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn label(epoch: u32) -> Zeroizing<Vec<u8>> {
    let mut label = LABEL_INCOMING.to_vec();
    if epoch > 0 {
        label.extend_from_slice(format!(":{epoch}").as_bytes());
    }
    Zeroizing::new(label)
}

impl IncomingIdentity {
    /// The identity of `epoch`, derived from `secret`.
    ///
    /// # Errors
    /// [`Error::Malformed`] if `epoch` exceeds [`MAX_INCOMING_EPOCH`].
    pub fn derive(secret: &StorageSecret, epoch: u32) -> Result<Self> {
        if epoch > MAX_INCOMING_EPOCH {
            return Err(Error::Malformed {
                what: "incoming key epoch",
            });
        }
        let key = secret.derive(&label(epoch));
        // age takes its identities as bech32 text only.
        let encoded = Zeroizing::new(
            bech32::encode(SECRET_KEY_HRP, key.to_base32(), Variant::Bech32)
                .map_err(|_| Error::Malformed {
                    what: "incoming identity",
                })?
                .to_uppercase(),
        );
        let identity = age::x25519::Identity::from_str(&encoded).map_err(|_| Error::Malformed {
            what: "incoming identity",
        })?;
        Ok(Self { epoch, identity })
    }

    /// The identities of epochs `0..=current`, newest first (to open messages
    /// sealed before a rotation).
    ///
    /// # Errors
    /// As [`derive`](Self::derive).
    pub fn up_to(secret: &StorageSecret, current: u32) -> Result<Vec<Self>> {
        (0..=current)
            .rev()
            .map(|epoch| Self::derive(secret, epoch))
            .collect()
    }

    /// The epoch of this identity.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The public key to publish (`age1…`): services seal to it.
    pub fn public_key(&self) -> String {
        self.identity.to_public().to_string()
    }
}

/// A sealing writer: write the plaintext, then call [`finish`](Self::finish).
pub struct SealWriter<W: Write>(age::stream::StreamWriter<W>);

impl<W: Write> fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealWriter")
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> SealWriter<W> {
    /// Writes the last chunk; without it the seal is truncated (and will not open).
    ///
    /// # Errors
    /// [`Error::Io`] if `output` fails.
    pub fn finish(self) -> Result<W> {
        Ok(self.0.finish()?)
    }
}

/// Starts sealing to `public_key` (`age1…`), writing the sealed bytes to `output`.
///
/// # Errors
/// [`Error::Malformed`] if `public_key` is not an age X25519 recipient;
/// [`Error::Io`] if `output` fails.
pub fn seal_incoming<W: Write>(public_key: &str, output: W) -> Result<SealWriter<W>> {
    let recipient =
        age::x25519::Recipient::from_str(public_key.trim()).map_err(|_| Error::Malformed {
            what: "incoming public key",
        })?;
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|_| Error::Malformed {
                what: "incoming public key",
            })?;
    Ok(SealWriter(encryptor.wrap_output(output)?))
}

/// Opens a sealed message with any of `identities`, returning a reader of the
/// plaintext. The reader fails with an [`std::io::Error`] of kind
/// `InvalidData` on tampering or truncation: read it to the end before trusting
/// anything.
///
/// # Errors
/// [`Error::Integrity`] if no identity opens it (sealed to another key) or its
/// header was altered; [`Error::Malformed`] if it is not an age file.
pub fn open_incoming<'a, R: BufRead + 'a>(
    identities: &[IncomingIdentity],
    sealed: R,
) -> Result<Box<dyn Read + 'a>> {
    let decryptor = age::Decryptor::new_buffered(sealed).map_err(map_decrypt)?;
    if decryptor.is_scrypt() {
        return Err(Error::Malformed {
            what: "incoming seal",
        });
    }
    let reader = decryptor
        .decrypt(
            identities
                .iter()
                .map(|identity| &identity.identity as &dyn age::Identity),
        )
        .map_err(map_decrypt)?;
    Ok(Box::new(reader))
}

fn map_decrypt(error: age::DecryptError) -> Error {
    match error {
        age::DecryptError::Io(io) => Error::Io(io),
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => Error::Malformed {
            what: "incoming seal",
        },
        _ => Error::Integrity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> StorageSecret {
        StorageSecret::from_bytes([byte; crate::keys::STORAGE_SECRET_LEN])
    }

    fn seal(key: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut writer = seal_incoming(key, Vec::new()).unwrap();
        writer.write_all(plaintext).unwrap();
        writer.finish().unwrap()
    }

    fn open(ids: &[IncomingIdentity], sealed: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        open_incoming(ids, sealed)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn sealed_to_the_derived_key_opens_only_with_it() {
        let alice = IncomingIdentity::derive(&secret(1), 0).unwrap();
        let again = IncomingIdentity::derive(&secret(1), 0).unwrap();
        assert_eq!(alice.public_key(), again.public_key(), "deterministic");
        assert!(alice.public_key().starts_with("age1"));
        let plaintext = vec![b'm'; 200_000];
        let sealed = seal(&alice.public_key(), &plaintext);
        assert!(!sealed.windows(16).any(|w| w == &plaintext[..16]));
        assert_eq!(open(&[alice], &sealed).unwrap(), plaintext);

        let bob = IncomingIdentity::derive(&secret(2), 0).unwrap();
        assert!(matches!(open(&[bob], &sealed), Err(Error::Integrity)));
        assert!(format!("{:?}", again).contains("epoch"));
    }

    #[test]
    fn rotation_keeps_older_messages_readable() {
        let s = secret(3);
        let old = IncomingIdentity::derive(&s, 0).unwrap();
        let new = IncomingIdentity::derive(&s, 1).unwrap();
        assert_ne!(old.public_key(), new.public_key());
        let before = seal(&old.public_key(), b"before");
        let after = seal(&new.public_key(), b"after");
        let all = IncomingIdentity::up_to(&s, 1).unwrap();
        assert_eq!(open(&all, &before).unwrap(), b"before");
        assert_eq!(open(&all, &after).unwrap(), b"after");
        assert!(IncomingIdentity::derive(&s, MAX_INCOMING_EPOCH + 1).is_err());
    }

    #[test]
    fn tampering_and_truncation_fail_and_junk_is_malformed() {
        let id = IncomingIdentity::derive(&secret(4), 0).unwrap();
        let sealed = seal(&id.public_key(), &vec![7u8; 100_000]);
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(open(std::slice::from_ref(&id), &flipped).is_err());
        let cut = &sealed[..sealed.len() - 100];
        assert!(open(std::slice::from_ref(&id), cut).is_err());
        assert!(matches!(
            open(std::slice::from_ref(&id), b"not an age file at all"),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            seal_incoming("age1notakey", Vec::new()),
            Err(Error::Malformed { .. })
        ));
    }
}
