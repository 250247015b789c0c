//! Authentication and authorisation of every request.
//!
//! Clients send `Authorization: Token base64(uuid:token)` (services send
//! `base64(servicename:token)`). [`authenticate`] is a middleware run on every
//! route of both APIs: it resolves the [`Principal`], then applies the access
//! rules by path, so no route (present or future) can forget them:
//!
//! * anonymous requests reach only `GET /` and `GET /robots.txt`;
//! * on the users API, any path naming a user (`/blobs/{uuid}…`,
//!   `/usage/{uuid}`, `/user-{uuid}…`) is reachable only by that user (403
//!   otherwise); `/shared/…` is open to every authenticated user;
//! * the services API accepts only service tokens.
//!
//! Missing, malformed, unknown or expired credentials give 401.

mod services;
mod tokens;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

pub use services::{ServiceTokens, append_service_token};
pub use tokens::{IssuedToken, SqliteTokenStore, TokenStore, UserRecord};

use crate::error::Error;

/// Longest `Authorization` header considered.
const MAX_AUTH_HEADER: usize = 1024;
/// Longest user id.
const MAX_USER_ID: usize = 64;

/// True for a user id (uuid-like): `[A-Za-z0-9_-]{1,64}`.
pub(crate) fn is_valid_user_id(uuid: &str) -> bool {
    !uuid.is_empty()
        && uuid.len() <= MAX_USER_ID
        && uuid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Who is making a request; inserted into the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A user of the users API, by uuid.
    User(String),
    /// A local service of the services API, by name.
    Service(String),
}

/// Which API a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// The public TLS users API.
    Users,
    /// The local plain-HTTP services API.
    Services,
}

/// State of the authentication middleware of one API.
#[derive(Clone)]
pub(crate) struct Authenticator {
    pub(crate) api: Api,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) services: Arc<ServiceTokens>,
}

/// Extracts `(id, token)` from an `Authorization: Token …` header.
/// `Ok(None)` when there is no header.
pub(crate) fn credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Error::Unauthorized)?;
    if value.len() > MAX_AUTH_HEADER {
        return Err(Error::Unauthorized);
    }
    let (scheme, encoded) = value.trim().split_once(' ').ok_or(Error::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("token") {
        return Err(Error::Unauthorized);
    }
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| URL_SAFE.decode(encoded))
        .map_err(|_| Error::Unauthorized)?;
    let text = String::from_utf8(decoded).map_err(|_| Error::Unauthorized)?;
    let (id, token) = text.split_once(':').ok_or(Error::Unauthorized)?;
    if id.is_empty() || token.is_empty() {
        return Err(Error::Unauthorized);
    }
    Ok(Some((id.to_owned(), token.to_owned())))
}

impl Authenticator {
    async fn principal(&self, headers: &HeaderMap) -> Result<Principal, Error> {
        let Some((id, token)) = credentials(headers)? else {
            return Ok(Principal::Anonymous);
        };
        match self.api {
            Api::Users => {
                if self.tokens.verify(&id, &token).await? {
                    Ok(Principal::User(id))
                } else {
                    Err(Error::Unauthorized)
                }
            }
            Api::Services => {
                if self.services.verify(&id, &token) {
                    Ok(Principal::Service(id))
                } else {
                    Err(Error::Unauthorized)
                }
            }
        }
    }
}

/// The user a users-API path names, if any: `/blobs/{uuid}…`, `/usage/{uuid}…`
/// or `/user-{uuid}…`. Raw (still percent-encoded) segments are compared, so
/// an encoded uuid never equals a real one.
fn owner_named_by(path: &str) -> Option<&str> {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    let first = segments.next()?;
    match first {
        "blobs" | "usage" => segments.next(),
        other => other.strip_prefix("user-"),
    }
}

/// The access rules, by API, principal and path (see the module doc).
pub(crate) fn authorize(
    api: Api,
    principal: &Principal,
    method: &Method,
    path: &str,
) -> Result<(), Error> {
    let public =
        (method == Method::GET || method == Method::HEAD) && (path == "/" || path == "/robots.txt");
    if public {
        return Ok(());
    }
    match (api, principal) {
        (_, Principal::Anonymous) => Err(Error::Unauthorized),
        (Api::Users, Principal::User(uuid)) => match owner_named_by(path) {
            Some(owner) if owner != uuid => Err(Error::Forbidden),
            _ => Ok(()),
        },
        (Api::Services, Principal::Service(_)) => Ok(()),
        (Api::Users, Principal::Service(_)) | (Api::Services, Principal::User(_)) => {
            Err(Error::Unauthorized)
        }
    }
}

/// The middleware: authenticates, authorises by path, and records the
/// [`Principal`] in the request extensions.
pub(crate) async fn authenticate(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Result<Response, Error> {
    let principal = auth.principal(request.headers()).await?;
    authorize(auth.api, &principal, request.method(), request.uri().path())?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uuid: &str) -> Principal {
        Principal::User(uuid.to_owned())
    }

    #[test]
    fn users_api_rules() {
        let get = Method::GET;
        let a = user("alice");
        assert!(authorize(Api::Users, &Principal::Anonymous, &get, "/").is_ok());
        assert!(authorize(Api::Users, &Principal::Anonymous, &get, "/robots.txt").is_ok());
        for path in [
            "/blobs/alice",
            "/shared/doc/x",
            "/nope",
            "/user-alice/sync-from/r",
        ] {
            assert!(matches!(
                authorize(Api::Users, &Principal::Anonymous, &get, path),
                Err(Error::Unauthorized)
            ));
        }
        for path in [
            "/blobs/alice",
            "/blobs/alice/b1",
            "/usage/alice",
            "/user-alice/sync-from/r",
            "/shared/doc/x",
        ] {
            assert!(authorize(Api::Users, &a, &get, path).is_ok(), "{path}");
        }
        for path in [
            "/blobs/bob",
            "/blobs/bob/b1",
            "/usage/bob",
            "/user-bob/sync-from/r",
            "/blobs/%61lice/b1",
            "/blobs//b1",
            "/user-alice2",
        ] {
            assert!(
                matches!(authorize(Api::Users, &a, &get, path), Err(Error::Forbidden)),
                "{path}"
            );
        }
    }

    #[test]
    fn services_api_rules() {
        let put = Method::PUT;
        let svc = Principal::Service("incoming".to_owned());
        assert!(authorize(Api::Services, &svc, &put, "/incoming/bob/x").is_ok());
        assert!(matches!(
            authorize(Api::Services, &user("bob"), &put, "/incoming/bob/x"),
            Err(Error::Unauthorized)
        ));
        assert!(matches!(
            authorize(Api::Users, &svc, &put, "/blobs/bob/x"),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn header_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(credentials(&headers).unwrap(), None);
        let value = format!("Token {}", STANDARD.encode("alice:s3cret"));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        assert_eq!(
            credentials(&headers).unwrap(),
            Some(("alice".to_owned(), "s3cret".to_owned()))
        );
        for bad in ["Basic YWxpY2U6eA==", "Token !!!", "Token YWxpY2U=", "Token"] {
            headers.insert(header::AUTHORIZATION, bad.parse().unwrap());
            assert!(
                matches!(credentials(&headers), Err(Error::Unauthorized)),
                "{bad}"
            );
        }
    }
}
