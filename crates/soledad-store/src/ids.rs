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

/// 16 random bytes as 32 lowercase hex digits.
pub(crate) fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| StoreError::RandomUnavailable)?;
    Ok(hex::encode(bytes))
}

/// A new document id: `D-` + 32 hex digits.
pub(crate) fn new_doc_id() -> Result<String> {
    Ok(format!("D-{}", random_hex()?))
}

/// A new transaction id: `T-` + 32 hex digits.
pub(crate) fn new_transaction_id() -> Result<String> {
    Ok(format!("T-{}", random_hex()?))
}
