//! What the Garage backend needs to reach its cluster.

use std::path::Path;
use std::time::Duration;

use super::error::GarageError;

/// Default timeout of one request to one Garage node.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default timeout to open a connection to one Garage node (a dead node is
/// skipped after this long).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A secret access key: redacted in `Debug`, never logged.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret key.
    pub fn new(secret: String) -> SecretKey {
        SecretKey(secret)
    }

    /// Reads a secret key file (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`GarageError::Config`] when the file cannot be read or is empty.
    pub fn from_file(path: &Path) -> Result<SecretKey, GarageError> {
        let text = std::fs::read_to_string(path).map_err(|error| GarageError::Config {
            what: format!(
                "cannot read the secret key file {}: {error}",
                path.display()
            ),
        })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(GarageError::Config {
                what: format!("the secret key file {} is empty", path.display()),
            });
        }
        Ok(SecretKey(secret.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// How to reach a Garage cluster: one S3 and one K2V endpoint per node (the
/// backend fails over between them), the bucket, the access key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GarageConfig {
    /// S3 API endpoints (`http://host:port`), one per node.
    pub s3_endpoints: Vec<String>,
    /// K2V API endpoints (`http://host:port`), one per node.
    pub k2v_endpoints: Vec<String>,
    /// The bucket holding everything (blobs as objects, the rest as K2V items).
    pub bucket: String,
    /// The S3 region Garage is configured with (`s3_region`).
    pub region: String,
    /// Access key id (`GK…`).
    pub key_id: String,
    /// Secret access key.
    pub secret_key: SecretKey,
    /// Timeout of one request to one node.
    pub request_timeout: Duration,
    /// Timeout to connect to one node.
    pub connect_timeout: Duration,
    /// Prefix of every object and partition key (characters
    /// `[A-Za-z0-9._-]`): several independent deployments (or test cases) can
    /// share one bucket.
    pub key_prefix: String,
}

impl GarageConfig {
    /// A configuration with default timeouts and no key prefix.
    pub fn new(
        s3_endpoints: Vec<String>,
        k2v_endpoints: Vec<String>,
        bucket: impl Into<String>,
        region: impl Into<String>,
        key_id: impl Into<String>,
        secret_key: SecretKey,
    ) -> GarageConfig {
        GarageConfig {
            s3_endpoints,
            k2v_endpoints,
            bucket: bucket.into(),
            region: region.into(),
            key_id: key_id.into(),
            secret_key,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            key_prefix: String::new(),
        }
    }

    /// The same configuration with every key under `prefix`.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> GarageConfig {
        self.key_prefix = prefix.into();
        self
    }

    /// Reads the configuration from the environment `scripts/garage-cluster`
    /// prints (`GARAGE_S3_ENDPOINTS`, `GARAGE_K2V_ENDPOINTS`, `GARAGE_BUCKET`,
    /// `GARAGE_REGION`, `GARAGE_KEY_ID`, `GARAGE_SECRET_KEY_FILE`); `None`
    /// when `GARAGE_K2V_ENDPOINTS` is not set. For tests and tools.
    ///
    /// # Errors
    /// [`GarageError::Config`] when a variable is missing or the secret key
    /// file cannot be read.
    pub fn from_env() -> Result<Option<GarageConfig>, GarageError> {
        let Ok(k2v) = std::env::var("GARAGE_K2V_ENDPOINTS") else {
            return Ok(None);
        };
        let var = |name: &str| {
            std::env::var(name).map_err(|_| GarageError::Config {
                what: format!("{name} is not set"),
            })
        };
        let list = |text: String| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let secret = SecretKey::from_file(Path::new(&var("GARAGE_SECRET_KEY_FILE")?))?;
        Ok(Some(GarageConfig::new(
            list(var("GARAGE_S3_ENDPOINTS")?),
            list(k2v),
            var("GARAGE_BUCKET")?,
            var("GARAGE_REGION").unwrap_or_else(|_| "garage".to_owned()),
            var("GARAGE_KEY_ID")?,
            secret,
        )))
    }
}
