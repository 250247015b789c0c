//! The delivery side of the incoming box, for a trusted local service (the
//! MX): fetch the user's published incoming key from the services API, seal
//! the message to it (age X25519, streaming through a temporary file, so
//! memory stays bounded whatever the size), and `PUT` the sealed bytes to
//! `/incoming/{uuid}/{id}` with a service token. The server only ever sees the
//! sealed bytes.
//!
//! ```no_run
//! # async fn run() -> Result<(), soledad_server::deliver::DeliverError> {
//! use soledad_server::deliver::Deliverer;
//!
//! let mx = Deliverer::new("http://127.0.0.1:2525", "incoming", "service-token")?;
//! let mail: &[u8] = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody";
//! let receipt = mx.deliver("alice", None, mail).await?;
//! println!("delivered {} as {}", receipt.sealed_bytes, receipt.id);
//! # Ok(()) }
//! ```
//! Needs a process-wide rustls crypto provider installed (reqwest is built
//! without a default one), as every client of the workspace.

use std::io::{Read, Seek as _, SeekFrom, Write as _};

use base64::Engine as _;
use reqwest::StatusCode;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The services URL, user id or message id is unusable.
    #[error("invalid {what}")]
    Invalid {
        /// What was refused.
        what: &'static str,
    },
    /// The server knows no such user, or the user has published no incoming
    /// key yet (nothing was stored).
    #[error("unknown user or no published incoming key")]
    NoKey,
    /// The published key is not an age X25519 recipient, or sealing failed.
    #[error("sealing failed: {0}")]
    Seal(#[from] soledad_crypto::Error),
    /// The server refused the delivery (409: the id exists; 507: over quota;
    /// 401: bad service token…).
    #[error("delivery refused with status {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The services API could not be reached.
    #[error("services API unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The message could not be read or the temporary file written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// What a delivery stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message id used.
    pub id: String,
    /// Bytes of the sealed message sent.
    pub sealed_bytes: u64,
}

/// A client of the services API that seals and delivers messages.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    base: String,
    authorization: String,
}

fn valid_id(text: &str) -> bool {
    crate::blobs::UserId::parse(text).is_ok()
}

/// A fresh random message id (32 hex digits).
fn random_id() -> Result<String, DeliverError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| std::io::Error::other("no randomness"))?;
    Ok(hex::encode(bytes))
}

impl Deliverer {
    /// A deliverer for the services API at `services_url`
    /// (`http://127.0.0.1:2525`), authenticating as service `name` with `token`.
    ///
    /// # Errors
    /// [`DeliverError::Invalid`] for a URL that is not `http(s)://…`;
    /// [`DeliverError::Http`] if the client cannot be built.
    pub fn new(services_url: &str, name: &str, token: &str) -> Result<Self, DeliverError> {
        let base = services_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(DeliverError::Invalid {
                what: "services URL",
            });
        }
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{token}"));
        Ok(Self {
            client: reqwest::Client::builder().build()?,
            base: base.to_owned(),
            authorization: format!("Token {credentials}"),
        })
    }

    /// The incoming public key `uuid` published.
    ///
    /// # Errors
    /// [`DeliverError::NoKey`]; [`DeliverError::Refused`]; [`DeliverError::Http`].
    pub async fn public_key(&self, uuid: &str) -> Result<String, DeliverError> {
        if !valid_id(uuid) {
            return Err(DeliverError::Invalid { what: "user id" });
        }
        let response = self
            .client
            .get(format!("{}/incoming-key/{uuid}", self.base))
            .header("authorization", &self.authorization)
            .send()
            .await?;
        match response.status() {
            StatusCode::OK => Ok(response.text().await?.trim().to_owned()),
            StatusCode::NOT_FOUND => Err(DeliverError::NoKey),
            other => Err(DeliverError::Refused {
                status: other.as_u16(),
            }),
        }
    }

    /// Seals `message` to `uuid`'s published key and delivers it as `id` (a
    /// random id if `None`).
    ///
    /// # Errors
    /// See [`DeliverError`]; on any error nothing is stored.
    pub async fn deliver(
        &self,
        uuid: &str,
        id: Option<&str>,
        message: impl Read + Send + 'static,
    ) -> Result<Receipt, DeliverError> {
        let id = match id {
            Some(id) if valid_id(id) => id.to_owned(),
            Some(_) => return Err(DeliverError::Invalid { what: "message id" }),
            None => random_id()?,
        };
        let key = self.public_key(uuid).await?;
        let (file, sealed_bytes) = tokio::task::spawn_blocking(move || seal_to_temp(&key, message))
            .await
            .map_err(|_| std::io::Error::other("sealing task failed"))??;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(
            tokio::fs::File::from_std(file),
        ));
        let response = self
            .client
            .put(format!("{}/incoming/{uuid}/{id}", self.base))
            .header("authorization", &self.authorization)
            .header("content-length", sealed_bytes)
            .body(body)
            .send()
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Receipt { id, sealed_bytes }),
            StatusCode::NOT_FOUND => Err(DeliverError::NoKey),
            other => Err(DeliverError::Refused {
                status: other.as_u16(),
            }),
        }
    }
}

/// Seals `message` to `public_key` into an anonymous temporary file, rewound;
/// returns it and its length.
///
/// # Errors
/// [`DeliverError::Seal`] for a bad key; [`DeliverError::Io`].
pub fn seal_to_temp(
    public_key: &str,
    mut message: impl Read,
) -> Result<(std::fs::File, u64), DeliverError> {
    let file = tempfile::tempfile()?;
    let mut writer = soledad_crypto::seal_incoming(public_key, std::io::BufWriter::new(file))?;
    std::io::copy(&mut message, &mut writer)?;
    let mut file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.flush()?;
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len))
}
