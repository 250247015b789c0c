//! Authentication of every request, and the access rules of every route.
//!
//! Clients send `Authorization: Token base64(uuid:token)` (services send
//! `base64(servicename:token)`). Two steps, each decided in one place:
//!
//! 1. [`authenticate`], a middleware on every route of both APIs, resolves the
//!    [`Principal`] and puts it in the request extensions. It only refuses
//!    what no route could grant: anonymous requests reach only `GET /` and
//!    `GET /robots.txt`; the users API accepts only user tokens, the services
//!    API only service tokens. Missing, malformed, unknown or expired
//!    credentials give 401.
//! 2. Ownership is decided after routing, on the decoded and parsed route
//!    parameters, by the typed extractors of [`access`]: [`access::Owner`]
//!    (the route names a user, who must be the caller: 403 otherwise),
//!    [`access::AuthenticatedUser`] (the route names no owner: shared store),
//!    [`access::ServiceCaller`] (services API). Every route is registered with
//!    its [`access::Access`] rule, which the router enforces before the
//!    handler runs (deny by default: there is no way to register a route
//!    without a rule). Raw path text is never compared, so an encoded
//!    segment (`%75ser-bob`) cannot mean "no owner".

pub(crate) mod access;
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
#[cfg(feature = "garage")]
pub(crate) use tokens::{hash_token, hashes_match};

use crate::blobs::UserId;
use crate::error::Error;

/// Longest `Authorization` header considered.
const MAX_AUTH_HEADER: usize = 1024;
/// Who is making a request; inserted into the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A user of the users API, by uuid.
    User(UserId),
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
                // An id that is not a valid user id was never issued a token.
                let user = UserId::parse(&id).map_err(|_| Error::Unauthorized)?;
                if self.tokens.verify(&id, &token).await? {
                    Ok(Principal::User(user))
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

/// Whether a request may reach a route with no credentials: only `GET` (or
/// `HEAD`) of `/` and `/robots.txt`, compared on the exact raw path.
fn is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && (path == "/" || path == "/robots.txt")
}

/// Authentication rules, by API and principal (see the module doc). Ownership
/// is not decided here but by the route's extractor ([`access`]).
pub(crate) fn admit(
    api: Api,
    principal: &Principal,
    method: &Method,
    path: &str,
) -> Result<(), Error> {
    match (api, principal) {
        (_, Principal::Anonymous) if is_public(method, path) => Ok(()),
        (_, Principal::Anonymous) => Err(Error::Unauthorized),
        (Api::Users, Principal::User(_)) | (Api::Services, Principal::Service(_)) => Ok(()),
        (Api::Users, Principal::Service(_)) | (Api::Services, Principal::User(_)) => {
            Err(Error::Unauthorized)
        }
    }
}

/// The middleware: authenticates, refuses what no route could grant to this
/// kind of principal, and records the [`Principal`] in the request extensions.
pub(crate) async fn authenticate(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Result<Response, Error> {
    let principal = auth.principal(request.headers()).await?;
    admit(auth.api, &principal, request.method(), request.uri().path())?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uuid: &str) -> Principal {
        Principal::User(UserId::parse(uuid).unwrap())
    }

    #[test]
    fn anonymous_reaches_only_the_public_routes() {
        let get = Method::GET;
        for api in [Api::Users, Api::Services] {
            assert!(admit(api, &Principal::Anonymous, &get, "/").is_ok());
            assert!(admit(api, &Principal::Anonymous, &get, "/robots.txt").is_ok());
            for path in [
                "/blobs/alice",
                "/shared/doc/x",
                "/nope",
                "/%72obots.txt",
                "/robots.txt/",
                "//",
                "/user-alice/sync-from/r",
            ] {
                assert!(
                    matches!(
                        admit(api, &Principal::Anonymous, &get, path),
                        Err(Error::Unauthorized)
                    ),
                    "{path}"
                );
            }
        }
        assert!(matches!(
            admit(Api::Users, &Principal::Anonymous, &Method::PUT, "/"),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn each_api_admits_only_its_kind_of_principal() {
        let put = Method::PUT;
        let svc = Principal::Service("incoming".to_owned());
        assert!(admit(Api::Services, &svc, &put, "/incoming/bob/x").is_ok());
        assert!(admit(Api::Users, &user("bob"), &put, "/blobs/bob/x").is_ok());
        assert!(matches!(
            admit(Api::Services, &user("bob"), &put, "/incoming/bob/x"),
            Err(Error::Unauthorized)
        ));
        assert!(matches!(
            admit(Api::Users, &svc, &put, "/blobs/bob/x"),
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
