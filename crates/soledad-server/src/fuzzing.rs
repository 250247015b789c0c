//! Hidden hooks for the fuzz targets in `fuzz/` (STYLE §3): thin wrappers that hand
//! untrusted bytes to the server's private parsers of network and file input, exactly
//! as the routes and the binary call them. Not part of the supported API.

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};

use crate::blobs::{Flag, ListQuery, RangeSpec};
use crate::config::Config;
use crate::error::Error;
use crate::routes::blobs::{BlobArgs, flags_body, range_header};

fn headers_with(name: HeaderName, value: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    Some(headers)
}

/// The `(id, token)` an `Authorization` header value carries, as the authentication
/// middleware reads it. `None` for bytes HTTP cannot carry as a header value.
pub fn authorization(value: &[u8]) -> Option<Result<Option<(String, String)>, Error>> {
    let headers = headers_with(header::AUTHORIZATION, value)?;
    Some(crate::auth::credentials(&headers))
}

/// The byte range a `Range` header value asks for (`None`: the whole blob, or bytes
/// HTTP cannot carry as a header value), as `GET /blobs/{uuid}/{blob_id}` reads it.
pub fn range(value: &[u8]) -> Option<RangeSpec> {
    range_header(&headers_with(header::RANGE, value)?)
}

/// The listing and the `only_count` switch a query string (the part after `?`) asks
/// of `GET /blobs/{uuid}`, through the same extractor as the route. `None` when the
/// text cannot be a URI query.
pub fn blob_list_query(query: &str) -> Option<Result<(ListQuery, bool), Error>> {
    let uri: Uri = format!("/blobs/fuzz?{query}").parse().ok()?;
    Some(match Query::<BlobArgs>::try_from_uri(&uri) {
        Ok(Query(args)) => args.list_query(),
        Err(_) => Err(Error::InvalidRequest {
            what: "query string",
        }),
    })
}

/// The flags a `POST /blobs/{uuid}/{blob_id}` body sets.
///
/// # Errors
/// As the route: [`Error::InvalidRequest`] or an unknown flag.
pub fn blob_flags(body: &[u8]) -> Result<Vec<Flag>, Error> {
    flags_body(body)
}

/// A configuration made from the defaults and an INI text, then validated, as
/// `soledad-server serve` does with its configuration file.
///
/// # Errors
/// [`Error::Config`] naming the offending option.
pub fn config_ini(text: &str) -> Result<Config, Error> {
    let mut config = Config::new("/nonexistent/soledad-fuzz");
    config.apply_ini(text)?;
    config.validate()?;
    Ok(config)
}
