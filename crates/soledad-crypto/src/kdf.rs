//! scrypt parameters, their cost caps, and the passphrase key derivation.
//!
//! Parameters are stored next to every passphrase-wrapped secret, so a file (or a
//! server-held backup) chooses them. [`KdfParams::validate`] caps that choice so no
//! input can buy more than [`MAX_MEMORY_BYTES`] of memory or [`MAX_WORK`] block-mix
//! operations (≈ 2× the production cost).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest accepted `log_n` (N = 2^log_n).
pub const MAX_LOG_N: u8 = 20;
/// Largest accepted scrypt block size `r`.
pub const MAX_R: u32 = 32;
/// Largest accepted scrypt parallelism `p`.
pub const MAX_P: u32 = 16;
/// Largest accepted scrypt memory, `128 · r · N` bytes (256 MiB).
pub const MAX_MEMORY_BYTES: u64 = 256 << 20;
/// Largest accepted scrypt work, `N · r · p` (2^21: twice [`KdfParams::interactive`]).
pub const MAX_WORK: u64 = 1 << 21;

/// scrypt parameters (N = 2^`log_n`, `r`, `p`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Base-2 logarithm of the CPU/memory cost N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// Production parameters, interactive-login class: N = 2^17, r = 8, p = 1
    /// (128 MiB, ≈ 0.54 s of CPU on the reference machine; see `docs/crypto.md`).
    /// Used for the secrets file, the backup and the backup id.
    pub const fn interactive() -> Self {
        Self {
            log_n: 17,
            r: 8,
            p: 1,
        }
    }

    /// Very cheap parameters (N = 2^4, r = 8, p = 1) so test suites stay fast.
    /// **Offers no protection against guessing: never use outside tests.**
    pub const fn insecure_fast_for_tests() -> Self {
        Self {
            log_n: 4,
            r: 8,
            p: 1,
        }
    }

    /// Checks the parameters against scrypt's rules and this crate's cost caps.
    ///
    /// # Errors
    /// [`Error::KdfParamsRejected`] if invalid or too costly.
    pub fn validate(&self) -> Result<()> {
        let rejected = Error::KdfParamsRejected {
            log_n: self.log_n,
            r: self.r,
            p: self.p,
        };
        if self.log_n == 0 || self.log_n > MAX_LOG_N || self.r == 0 || self.r > MAX_R {
            return Err(rejected);
        }
        if self.p == 0 || self.p > MAX_P {
            return Err(rejected);
        }
        let n = 1u64 << self.log_n;
        let r = u64::from(self.r);
        let p = u64::from(self.p);
        if 128 * r * n > MAX_MEMORY_BYTES || n * r * p > MAX_WORK {
            return Err(rejected);
        }
        Ok(())
    }

    /// Derives `N` bytes from `passphrase` and `salt`.
    ///
    /// # Errors
    /// [`Error::KdfParamsRejected`] if the parameters fail [`validate`](Self::validate).
    pub(crate) fn derive<const N: usize>(
        &self,
        passphrase: &[u8],
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; N]>> {
        self.validate()?;
        let rejected = Error::KdfParamsRejected {
            log_n: self.log_n,
            r: self.r,
            p: self.p,
        };
        let params = scrypt::Params::new(self.log_n, self.r, self.p, N).map_err(|_| rejected)?;
        let mut out = Zeroizing::new([0u8; N]);
        scrypt::scrypt(passphrase, salt, &params, out.as_mut()).map_err(|_| {
            Error::KdfParamsRejected {
                log_n: self.log_n,
                r: self.r,
                p: self.p,
            }
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_and_test_params_are_accepted() {
        KdfParams::interactive().validate().unwrap();
        KdfParams::insecure_fast_for_tests().validate().unwrap();
    }

    #[test]
    fn absurd_costs_are_rejected() {
        for (log_n, r, p) in [
            (0, 8, 1),
            (21, 8, 1),
            (30, 8, 1),
            (17, 8, 4),
            (19, 8, 1),
            (10, 0, 1),
            (10, 8, 0),
            (10, 1000, 1),
            (10, 8, 1000),
        ] {
            let params = KdfParams { log_n, r, p };
            assert!(
                matches!(params.validate(), Err(Error::KdfParamsRejected { .. })),
                "{params:?} should be rejected"
            );
        }
    }
}
