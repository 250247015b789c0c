//! Who may act on what, decided once per request on parsed identities.
//!
//! Every route is registered with an [`Access`] rule; the router runs
//! [`enforce`] for it after routing and before the handler, and handlers take
//! the matching extractor to learn who they act for:
//!
//! | rule | extractor | who passes |
//! |---|---|---|
//! | [`Access::Public`] | none | anyone (only `GET /`, `GET /robots.txt`) |
//! | [`Access::Owner`] | [`Owner`] | the user the route names, nobody else (403) |
//! | [`Access::AuthenticatedUser`] | [`AuthenticatedUser`] | any user; the route names no owner |
//! | [`Access::Service`] | [`ServiceCaller`] | a service of the services API |
//!
//! The owner a route names comes from the *decoded* route parameters (axum
//! percent-decodes them once), parsed into the one [`UserId`] type: `{uuid}` on
//! `/blobs/{uuid}…`, `/usage/{uuid}`, `/incoming…/{uuid}…` and
//! `/changes/{uuid}` (the live sync long poll), and `{db}` = `user-{uuid}` on
//! `/{db}/sync-from/{source}` (any other database name is 404). Whatever the
//! spelling of the path (`%75ser-`, `user%2D`, `%2575`), the request acts on
//! exactly the user the handler sees, and that user is the caller.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::Principal;
use crate::blobs::UserId;
use crate::error::Error;

/// Route parameter naming the owner: `/blobs/{uuid}…`, `/usage/{uuid}`,
/// `/changes/{uuid}`, …
pub(crate) const OWNER_PARAM: &str = "uuid";
/// Route parameter naming a user's document database: `/{db}/sync-from/…`.
pub(crate) const DB_PARAM: &str = "db";

/// The access rule of a route (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, with or without credentials.
    Public,
    /// Only the user named by the route's `{uuid}` or `{db}` parameter.
    Owner,
    /// Any authenticated user: the route names no owner (the shared store,
    /// whose documents the store scopes to the caller).
    AuthenticatedUser,
    /// Only a service (services API).
    Service,
}

fn principal(parts: &Parts) -> Result<&Principal, Error> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or(Error::Unauthorized)
}

/// The user the decoded route parameters name. An owner parameter that is not
/// a valid user id names nobody the caller could be: 403. A database that is
/// not `user-…` does not exist: 404.
pub(crate) fn named_user(params: &HashMap<String, String>) -> Result<UserId, Error> {
    if let Some(uuid) = params.get(OWNER_PARAM) {
        return UserId::parse(uuid).map_err(|_| Error::Forbidden);
    }
    if let Some(db) = params.get(DB_PARAM) {
        let uuid = soledad_protocol::user_db_uuid(db).ok_or(Error::NotFound)?;
        return UserId::parse(uuid).map_err(|_| Error::Forbidden);
    }
    // An owner rule on a route that names no owner: deny.
    Err(Error::Forbidden)
}

/// The authenticated user, who is also the user the route names.
#[derive(Debug, Clone)]
pub(crate) struct Owner(pub(crate) UserId);

impl<S: Send + Sync> FromRequestParts<S> for Owner {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Principal::User(caller) = principal(parts)? else {
            return Err(Error::Unauthorized);
        };
        let caller = caller.clone();
        // Undecodable parameters (bad UTF-8 after percent-decoding) name nobody.
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::Forbidden)?;
        let named = named_user(&params)?;
        if named == caller {
            Ok(Owner(named))
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// The authenticated user of a route that names no owner.
#[derive(Debug, Clone)]
pub(crate) struct AuthenticatedUser(pub(crate) UserId);

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        match principal(parts)? {
            Principal::User(user) => Ok(AuthenticatedUser(user.clone())),
            Principal::Anonymous | Principal::Service(_) => Err(Error::Unauthorized),
        }
    }
}

/// The authenticated service of a services-API route, by name.
#[derive(Debug, Clone)]
pub(crate) struct ServiceCaller(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for ServiceCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        match principal(parts)? {
            Principal::Service(name) => Ok(ServiceCaller(name.clone())),
            Principal::Anonymous | Principal::User(_) => Err(Error::Unauthorized),
        }
    }
}

/// Route layer applying a route's [`Access`] rule before its handler runs.
pub(crate) async fn enforce(
    State(access): State<Access>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let (mut parts, body) = request.into_parts();
    match access {
        Access::Public => {}
        Access::Owner => {
            Owner::from_request_parts(&mut parts, &()).await?;
        }
        Access::AuthenticatedUser => {
            AuthenticatedUser::from_request_parts(&mut parts, &()).await?;
        }
        Access::Service => {
            ServiceCaller::from_request_parts(&mut parts, &()).await?;
        }
    }
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_named_user_is_parsed_from_decoded_parameters() {
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(named_user(&params(&[("uuid", "alice")])).unwrap(), alice);
        assert_eq!(
            named_user(&params(&[("db", "user-alice"), ("source", "r")])).unwrap(),
            alice
        );
        for bad in ["", "a/b", "%61lice", "alice ", ".."] {
            assert!(
                matches!(named_user(&params(&[("uuid", bad)])), Err(Error::Forbidden)),
                "{bad:?}"
            );
        }
        for other_db in ["alice", "USER-alice", "User-alice", "shared", "user_alice"] {
            assert!(
                matches!(
                    named_user(&params(&[("db", other_db)])),
                    Err(Error::NotFound)
                ),
                "{other_db:?}"
            );
        }
        assert!(matches!(
            named_user(&params(&[("db", "user-%61lice")])),
            Err(Error::Forbidden)
        ));
        assert!(matches!(
            named_user(&params(&[("id", "alice")])),
            Err(Error::Forbidden)
        ));
    }
}
