//! The incoming box routes of the users API, on the client's connection pool.

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::Response;
use serde::Deserialize;
use soledad_protocol::{ErrorBody, ErrorKind};

use crate::error::Error;
use crate::transport::Transport;

/// Longest listing or claim answer read.
const MAX_JSON: usize = 4 << 20;

/// One message of a listing.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireMessage {
    pub(crate) id: String,
    pub(crate) size: u64,
}

/// A listing page.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireListing {
    pub(crate) messages: Vec<WireMessage>,
    #[serde(default)]
    pub(crate) skipped_oversized: Vec<String>,
}

/// A granted claim.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireClaim {
    pub(crate) claim: String,
}

/// What a claim attempt gave.
pub(crate) enum ClaimOutcome {
    Granted(WireClaim),
    /// Another device holds it (or it failed at this version): skip it.
    Taken,
}

async fn bounded(response: Response, max: usize) -> Result<Bytes, Error> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(Error::Server {
            kind: None,
            message: "incoming response too large".to_owned(),
        });
    }
    let mut out = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Error::network)?;
        if out.len().saturating_add(chunk.len()) > max {
            return Err(Error::Server {
                kind: None,
                message: "incoming response too large".to_owned(),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

async fn error_of(response: Response) -> Error {
    let status = response.status().as_u16();
    let bytes = bounded(response, 64 * 1024).await.unwrap_or_default();
    let (kind, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => (body.kind(), body.message),
        Err(_) => (None, format!("HTTP {status}")),
    };
    Error::from_server(status, kind, message)
}

fn is_claimed(error: &Error) -> bool {
    matches!(
        error,
        Error::Server {
            kind: Some(ErrorKind::MessageClaimed),
            ..
        }
    )
}

/// The users-API incoming box client of one user.
#[derive(Clone)]
pub(crate) struct Wire {
    transport: Transport,
}

impl Wire {
    pub(crate) fn new(transport: Transport) -> Self {
        Self { transport }
    }

    fn url(&self, rest: &str) -> String {
        let (_, base, uuid, _) = self.transport.parts();
        format!("{base}/incoming/{uuid}{rest}")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, Error> {
        let (_, _, _, auth) = self.transport.parts();
        let response = request
            .header("authorization", auth.clone())
            .send()
            .await
            .map_err(Error::network)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_of(response).await)
        }
    }

    pub(crate) async fn list(
        &self,
        size_limit: Option<u64>,
        version: u64,
    ) -> Result<WireListing, Error> {
        let (http, ..) = self.transport.parts();
        let mut query = format!("?version={version}");
        if let Some(limit) = size_limit {
            query.push_str(&format!("&size_limit={limit}"));
        }
        let response = self.send(http.get(self.url(&query))).await?;
        let bytes = bounded(response, MAX_JSON).await?;
        serde_json::from_slice(&bytes).map_err(|_| Error::Server {
            kind: None,
            message: "malformed incoming listing".to_owned(),
        })
    }

    pub(crate) async fn claim(&self, id: &str, version: u64) -> Result<ClaimOutcome, Error> {
        let (http, ..) = self.transport.parts();
        let url = self.url(&format!("/{id}/claim?version={version}"));
        match self.send(http.post(url)).await {
            Ok(response) => {
                let bytes = bounded(response, MAX_JSON).await?;
                let claim = serde_json::from_slice(&bytes).map_err(|_| Error::Server {
                    kind: None,
                    message: "malformed claim".to_owned(),
                })?;
                Ok(ClaimOutcome::Granted(claim))
            }
            Err(error) if is_claimed(&error) => Ok(ClaimOutcome::Taken),
            Err(Error::Server {
                kind: Some(ErrorKind::BlobNotFound),
                ..
            }) => Ok(ClaimOutcome::Taken),
            Err(error) => Err(error),
        }
    }

    /// The stored message: preamble and sealed bytes, at most `max` bytes.
    pub(crate) async fn download(&self, id: &str, max: usize) -> Result<Bytes, Error> {
        let (http, base, uuid, _) = self.transport.parts();
        let url = format!("{base}/blobs/{uuid}/{id}?namespace=MX");
        let response = self.send(http.get(url)).await?;
        bounded(response, max).await
    }

    pub(crate) async fn processed(&self, id: &str, claim: &str) -> Result<(), Error> {
        let (http, ..) = self.transport.parts();
        let body = serde_json::json!({ "claim": claim });
        self.send(http.post(self.url(&format!("/{id}/processed"))).json(&body))
            .await?;
        Ok(())
    }

    pub(crate) async fn failed(&self, id: &str, claim: &str, version: u64) -> Result<(), Error> {
        let (http, ..) = self.transport.parts();
        let body = serde_json::json!({ "claim": claim, "version": version });
        self.send(http.post(self.url(&format!("/{id}/failed"))).json(&body))
            .await?;
        Ok(())
    }

    pub(crate) async fn publish_key(&self, key: &str) -> Result<(), Error> {
        let (http, base, uuid, _) = self.transport.parts();
        let url = format!("{base}/incoming-key/{uuid}");
        self.send(http.put(url).body(key.to_owned())).await?;
        Ok(())
    }
}
