//! Validated names: user ids, blob ids and namespaces.
//!
//! Parse, don't validate: these newtypes are only made by their parsers, which
//! accept nothing but `[A-Za-z0-9_-]` up to a length cap. So a value of these
//! types never holds `.`, `/`, `\`, `%`, NUL, non-ASCII or an empty string, and
//! a path built from them cannot leave its directory.

use std::fmt;

use super::error::BlobError;

/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 64;
/// Longest accepted blob id, in bytes.
pub const MAX_BLOB_ID_LEN: usize = 128;
/// Longest accepted namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// Whether `s` is 1..=`max` characters of `[A-Za-z0-9_-]`.
fn is_safe_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A user's id (the uuid in `/blobs/{uuid}`): 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Parses a user id.
    ///
    /// # Errors
    /// [`BlobError::InvalidUserId`] if `s` is empty, longer than
    /// [`MAX_USER_ID_LEN`] or has a character outside `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, BlobError> {
        if is_safe_name(s, MAX_USER_ID_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(BlobError::InvalidUserId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A blob's id: 1 to 128 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    /// Parses a blob id.
    ///
    /// # Errors
    /// [`BlobError::InvalidBlobId`] if `s` is empty, longer than
    /// [`MAX_BLOB_ID_LEN`] or has a character outside `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, BlobError> {
        if is_safe_name(s, MAX_BLOB_ID_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(BlobError::InvalidBlobId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A namespace: 1 to 64 characters of `[A-Za-z0-9_-]`.
///
/// [`Namespace::default`] is `default` (used when a request names none);
/// [`Namespace::incoming`] is `MX`, the incoming box.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// Parses a namespace.
    ///
    /// # Errors
    /// [`BlobError::InvalidNamespace`] if `s` is empty, longer than
    /// [`MAX_NAMESPACE_LEN`] or has a character outside `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, BlobError> {
        if is_safe_name(s, MAX_NAMESPACE_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(BlobError::InvalidNamespace)
        }
    }

    /// The namespace of the incoming box, `MX`.
    pub fn incoming() -> Self {
        Self("MX".to_owned())
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    /// The namespace used when a request names none: `default`.
    fn default() -> Self {
        Self("default".to_owned())
    }
}

macro_rules! text_impls {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}
text_impls!(UserId, BlobId, Namespace);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_names_and_rejects_everything_else() {
        assert!(BlobId::parse("some-blob_ID-09").is_ok());
        for bad in [
            "", ".", "..", "a/b", "/etc", "a\\b", "a%2Fb", "a\0b", "é", "a b", "a.b",
        ] {
            assert!(
                matches!(BlobId::parse(bad), Err(BlobError::InvalidBlobId)),
                "{bad:?}"
            );
            assert!(
                matches!(UserId::parse(bad), Err(BlobError::InvalidUserId)),
                "{bad:?}"
            );
            assert!(
                matches!(Namespace::parse(bad), Err(BlobError::InvalidNamespace)),
                "{bad:?}"
            );
        }
        assert!(BlobId::parse(&"a".repeat(MAX_BLOB_ID_LEN)).is_ok());
        assert!(BlobId::parse(&"a".repeat(MAX_BLOB_ID_LEN + 1)).is_err());
        assert!(UserId::parse(&"a".repeat(MAX_USER_ID_LEN + 1)).is_err());
        assert!(Namespace::parse(&"a".repeat(MAX_NAMESPACE_LEN + 1)).is_err());
        assert_eq!(Namespace::default().as_str(), "default");
        assert_eq!(Namespace::incoming().as_str(), "MX");
    }
}
