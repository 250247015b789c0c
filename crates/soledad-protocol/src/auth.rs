//! The `Authorization: Token base64(uuid:token)` header.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::ProtocolError;

/// The scheme word of the header.
pub const AUTH_SCHEME: &str = "Token";

/// Longest header value accepted, to bound decoding work.
const MAX_HEADER_LEN: usize = 1024;

/// Credentials carried by the `Authorization` header: a user uuid (or a service name)
/// and its token.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// The user's uuid, or the service's name on the services API.
    pub uuid: String,
    /// The secret token.
    pub token: String,
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeader")
            .field("uuid", &self.uuid)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl AuthHeader {
    /// The header value, `Token base64(uuid:token)`.
    pub fn to_header_value(&self) -> String {
        let raw = format!("{}:{}", self.uuid, self.token);
        format!("{AUTH_SCHEME} {}", STANDARD.encode(raw))
    }

    /// Parses a header value.
    ///
    /// # Errors
    /// [`ProtocolError::MalformedAuthorization`] unless the value is `Token ` followed by
    /// standard base64 of `uuid:token` with a non-empty uuid without `:` and a
    /// non-empty token.
    pub fn parse(value: &str) -> Result<Self, ProtocolError> {
        let bad = || ProtocolError::MalformedAuthorization;
        if value.len() > MAX_HEADER_LEN {
            return Err(bad());
        }
        let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(bad)?;
        if !scheme.eq_ignore_ascii_case(AUTH_SCHEME) {
            return Err(bad());
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (uuid, token) = decoded.split_once(':').ok_or_else(bad)?;
        if uuid.is_empty() || token.is_empty() {
            return Err(bad());
        }
        Ok(AuthHeader {
            uuid: uuid.to_owned(),
            token: token.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_seed_encoding() {
        let header = AuthHeader {
            uuid: "user-1".into(),
            token: "s3cr3t".into(),
        };
        let value = header.to_header_value();
        // base64("user-1:s3cr3t")
        assert_eq!(value, "Token dXNlci0xOnMzY3IzdA==");
        assert_eq!(AuthHeader::parse(&value).unwrap(), header);
    }

    #[test]
    fn rejects_malformed_values() {
        for value in [
            "",
            "Token",
            "Basic dXNlci0xOnMzY3IzdA==",
            "Token !!!notbase64",
            "Token dXNlcg==", // "user": no colon
            "Token OnRva2Vu", // ":token": empty uuid
            "Token dXNlcjo=", // "user:": empty token
        ] {
            assert_eq!(
                AuthHeader::parse(value),
                Err(ProtocolError::MalformedAuthorization),
                "{value:?}"
            );
        }
        let long = format!("Token {}", "A".repeat(4096));
        assert!(AuthHeader::parse(&long).is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let header = AuthHeader {
            uuid: "u".into(),
            token: "topsecret".into(),
        };
        assert!(!format!("{header:?}").contains("topsecret"));
    }
}
