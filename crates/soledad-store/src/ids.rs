//! Document ids, transaction ids and replica uids: validation and generation.

use crate::error::{Result, StoreError};

/// Longest document id accepted (bytes).
pub const MAX_DOC_ID_BYTES: usize = 1024;

/// True if `doc_id` matches u1db's `[A-Za-z0-9.%_-]+` (and is not absurdly long).
pub fn is_valid_doc_id(doc_id: &str) -> bool {
    !doc_id.is_empty()
        && doc_id.len() <= MAX_DOC_ID_BYTES
        && doc_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'%' | b'_' | b'-'))
}

/// Fails with [`StoreError::InvalidDocId`] unless the id is valid.
pub(crate) fn check_doc_id(doc_id: &str) -> Result<()> {
    if is_valid_doc_id(doc_id) {
        Ok(())
    } else {
        Err(StoreError::InvalidDocId)
    }
}

/// OS randomness fetched in blocks, so creating many documents does not cost
/// two `getrandom` system calls each.
#[derive(Default)]
pub(crate) struct RandomPool {
    buffer: Vec<u8>,
}

impl std::fmt::Debug for RandomPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Upcoming ids are nobody's business.
        f.debug_struct("RandomPool").finish_non_exhaustive()
    }
}

impl RandomPool {
    const BLOCK: usize = 1024;

    /// 16 random bytes as 32 lowercase hex digits.
    pub(crate) fn hex16(&mut self) -> Result<String> {
        if self.buffer.len() < 16 {
            let mut block = vec![0u8; Self::BLOCK];
            getrandom::fill(&mut block).map_err(|_| StoreError::RandomUnavailable)?;
            self.buffer = block;
        }
        let at = self.buffer.len() - 16;
        let hex = hex::encode(self.buffer.get(at..).unwrap_or_default());
        // Used bytes are dropped, never handed out twice.
        self.buffer.truncate(at);
        Ok(hex)
    }

    /// A new document id: `D-` + 32 hex digits.
    pub(crate) fn new_doc_id(&mut self) -> Result<String> {
        Ok(format!("D-{}", self.hex16()?))
    }

    /// A new transaction id: `T-` + 32 hex digits.
    pub(crate) fn new_transaction_id(&mut self) -> Result<String> {
        Ok(format!("T-{}", self.hex16()?))
    }
}

/// 16 random bytes as 32 lowercase hex digits (one-off uses).
pub(crate) fn random_hex() -> Result<String> {
    RandomPool::default().hex16()
}
