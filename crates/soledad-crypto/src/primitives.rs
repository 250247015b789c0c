//! Thin wrappers over the audited primitives (ring AES-256-GCM, RustCrypto HMAC,
//! HKDF, scrypt, the OS RNG), so every other module speaks one small vocabulary.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// AES-256-GCM key length in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// AES-256-GCM nonce length in bytes.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-256-GCM tag length in bytes.
pub(crate) const TAG_LEN: usize = 16;

/// Fills `buf` from the operating system's RNG.
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Random)
}

/// Returns `N` random bytes.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    random_fill(&mut out)?;
    Ok(out)
}

/// An AES-256-GCM key ready for use (ring keeps its own expanded copy).
pub(crate) struct AeadKey(LessSafeKey);

impl AeadKey {
    /// Builds the key from 32 bytes.
    pub(crate) fn new(bytes: &[u8; KEY_LEN]) -> Result<Self> {
        // ring only rejects keys of the wrong length, which the type rules out.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::Integrity)?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| Error::TooLarge { what: "AEAD input" })
    }

    /// Encrypts `buf` in place and returns the tag (for callers that lay out
    /// header, ciphertext and tag in one buffer).
    pub(crate) fn seal_slice(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| Error::TooLarge { what: "AEAD input" })?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `buf` (ciphertext ‖ tag) in place; returns the plaintext length
    /// (the plaintext is `buf[..len]`). Any failure is [`Error::Integrity`].
    pub(crate) fn open_slice(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<usize> {
        Ok(self
            .0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| Error::Integrity)?
            .len())
    }

    /// Decrypts `buf` (ciphertext ‖ tag) in place and strips the tag.
    /// Any failure is [`Error::Integrity`].
    pub(crate) fn open(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        let plain_len = self
            .0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| Error::Integrity)?
            .len();
        buf.truncate(plain_len);
        Ok(())
    }
}

/// HMAC-SHA256(key, `parts[0] ‖ parts[1] ‖ …`).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    let tag = ctx.sign();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

/// HKDF-SHA256 extract-then-expand into `out`.
pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<()> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand_multi_info(info, out)
        .map_err(|_| Error::TooLarge {
            what: "HKDF output",
        })
}

/// SHA-256 of the concatenated parts.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}
