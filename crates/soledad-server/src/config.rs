//! Server configuration: one documented [`Config`], its defaults and `validate()`.
//!
//! The library never reads the environment or files by itself: the binary reads
//! the INI text and the environment and hands them to [`Config::apply_ini`] and
//! [`Config::apply_env`]; library callers (tests, embedders) set the fields
//! directly.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;

/// Default port of the public users API (TLS), as in the seed.
pub const DEFAULT_USERS_PORT: u16 = 2424;
/// Default port of the local services API (plain HTTP on 127.0.0.1), as in the seed.
pub const DEFAULT_SERVICES_PORT: u16 = 2525;
/// The INI section the server reads, as in the seed.
pub const INI_SECTION: &str = "soledad-server";
/// Default per-user quota: 4 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 4 << 30;
/// Default time a deleted blob's tombstone is kept (listed with `deleted`,
/// charged to the quota) before it is purged: 30 days.
pub const DEFAULT_DELETED_BLOB_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default cap on one shared (key backup) document: 1 MiB.
pub const DEFAULT_SHARED_DOC_MAX_BYTES: u64 = 1 << 20;
/// Largest accepted `shared_doc_max_bytes`.
pub const MAX_SHARED_DOC_MAX_BYTES: u64 = 64 << 20;

/// Default time a client has to send a request's headers: 30 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a connection may stay open with no request in flight: 30 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a TLS handshake may take: 10 s.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default interval of HTTP/2 keep-alive pings: 30 s.
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Default time an HTTP/2 keep-alive ping may stay unanswered: 20 s.
pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default longest pause inside a request body: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default connection limit of each API: 4096.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default concurrent sync exchanges per user: 4.
pub const DEFAULT_MAX_SYNC_EXCHANGES_PER_USER: usize = 4;
/// Default shared-store misses per user and minute: 30.
pub const DEFAULT_SHARED_MISSES_PER_MINUTE: u32 = 30;
/// Default longest wait of a change request (`GET /changes/{uuid}`): 25 s,
/// under the 30 s idle timeouts common in proxies.
pub const DEFAULT_LIVE_WAIT: Duration = Duration::from_secs(25);
/// Default change requests one user may have waiting at once: 8 (devices).
pub const DEFAULT_LIVE_WAITS_PER_USER: usize = 8;
/// Default change requests waiting on the whole server: 8192.
pub const DEFAULT_MAX_LIVE_WAITS: usize = 8192;
/// Longest accepted timeout option: one day.
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Seed options that configured the CouchDB backend; accepted and ignored.
const LEGACY_OPTIONS: [&str; 3] = ["couch_url", "create_cmd", "admin_netrc"];

/// Everything the server needs to run.
///
/// Build one with [`Config::new`] (defaults under a data directory), adjust the
/// fields, then [`Server::start`](crate::Server::start) validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory for the token store, shared store, user databases, blobs and
    /// the generated TLS certificate. INI option `data_path`.
    pub data_path: PathBuf,
    /// Address of the public users API (TLS). INI `users_address`; env
    /// `HTTPS_PORT` overrides the port. Default `0.0.0.0:2424`.
    pub users_address: SocketAddr,
    /// Address of the local services API (plain HTTP). Must be a loopback
    /// address. INI `services_address`; env `LOCAL_SERVICES_PORT` overrides the
    /// port. Default `127.0.0.1:2525`.
    pub services_address: SocketAddr,
    /// PEM certificate chain for the users API. INI `tls_cert_file`. When unset,
    /// a self-signed certificate is generated once in the data directory.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key matching `tls_cert_file`. INI `tls_key_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Whether the blobs API is served. Seed option `blobs`. Default `true`
    /// (Δ the seed defaulted to false; blobs are the main payload path now).
    pub blobs: bool,
    /// Where blobs are stored. Seed option `blobs_path`; default
    /// `<data_path>/blobs`.
    pub blobs_path: Option<PathBuf>,
    /// Limit of concurrent blob writes. Seed option `concurrent_blob_writes`,
    /// default 50.
    pub concurrent_blob_writes: usize,
    /// File of `name:token` lines for the services API. Seed option
    /// `services_tokens_file`; default `<data_path>/services.tokens`.
    pub services_tokens_file: Option<PathBuf>,
    /// Whether sync uses batching. Seed option `batching`, default true (kept
    /// for the sync routes).
    pub batching: bool,
    /// Storage quota of each user, in bytes, over every write path (blobs,
    /// incoming, later documents). INI `quota_bytes`; `u64::MAX` means no limit.
    pub quota_bytes: u64,
    /// Largest shared document accepted, in bytes. INI `shared_doc_max_bytes`.
    pub shared_doc_max_bytes: u64,
    /// How long a deleted blob's tombstone is kept (listed with `deleted`,
    /// charged one entry of quota) before it is purged: when the user's usage
    /// is first measured after a start, and whenever the namespace is listed.
    /// INI `deleted_blob_retention_days` (whole days, 0 purges at the next
    /// listing), default [`DEFAULT_DELETED_BLOB_RETENTION`].
    pub deleted_blob_retention: Duration,
    /// Of `concurrent_blob_writes`, at most this many for one user, so one
    /// user's stalled uploads cannot starve everyone else's (and incoming
    /// deliveries). INI `per_user_blob_writes`; 0 (default) means a quarter
    /// of `concurrent_blob_writes`, at least 1.
    pub per_user_blob_writes: usize,
    /// Time a client has to send a request's headers (HTTP/1.1). INI
    /// `header_read_timeout_secs`, default 30.
    pub header_read_timeout: Duration,
    /// Time a connection (TLS done, or plain TCP on the services API) may stay
    /// open with no request in flight: before its first request, and after
    /// its last response; on both APIs and for HTTP/1.1 and HTTP/2 alike.
    /// INI `idle_timeout_secs`, default 30.
    pub idle_timeout: Duration,
    /// Time a TLS handshake may take. INI `tls_handshake_timeout_secs`,
    /// default 10.
    pub tls_handshake_timeout: Duration,
    /// Interval of the HTTP/2 keep-alive pings that detect dead peers (0 turns
    /// them off). INI `http2_keep_alive_interval_secs`, default 30.
    pub http2_keep_alive_interval: Duration,
    /// Time a keep-alive ping may stay unanswered before the connection is
    /// closed. INI `http2_keep_alive_timeout_secs`, default 20.
    pub http2_keep_alive_timeout: Duration,
    /// Longest pause while reading a request body (uploads, incoming
    /// deliveries, sync streams, shared documents): a body that sends nothing
    /// for this long fails its request, which releases everything it held
    /// (write permit, quota reservation, temporary file). INI
    /// `body_timeout_secs`, default 30.
    pub body_timeout: Duration,
    /// Connections each API serves at once; more are closed at once. INI
    /// `max_connections`, default 4096.
    pub max_connections: usize,
    /// Sync exchanges (`POST /user-…/sync-from/…`) one user may run at once;
    /// beyond, 429 `too_many_requests`. INI `max_sync_exchanges_per_user`,
    /// default 4.
    pub max_sync_exchanges_per_user: usize,
    /// Misses (404) on the shared store one user may cause per minute; beyond,
    /// every shared-store lookup of that user is 429 until the bucket refills.
    /// INI `shared_misses_per_minute`, default 30; 0 means no limit.
    pub shared_misses_per_minute: u32,
    /// How long a device's claim on an incoming message holds (the seed's
    /// `PROCESSING_THRESHOLD`): past it, another device may claim the message,
    /// so a device that died does not block it. INI
    /// `processing_threshold_secs`, default 600.
    pub processing_threshold: Duration,
    /// Longest wait of a change request (`GET /changes/{uuid}`): with nothing
    /// changed by then, it answers "no change" and the device asks again.
    /// Keep it under the idle timeout of any proxy in front. INI
    /// `live_wait_secs`, default 25.
    pub live_wait: Duration,
    /// Change requests one user may have waiting at once; beyond, 429
    /// `too_many_requests`. INI `live_waits_per_user`, default 8.
    pub live_waits_per_user: usize,
    /// Change requests waiting on the whole server; beyond, 503
    /// `unavailable`. INI `max_live_waits`, default 8192.
    pub max_live_waits: usize,
    /// Where the server keeps its state. INI `backend`: `embedded` (default:
    /// SQLite files and blobs under `data_path`) or `garage` (a Garage
    /// cluster, `docs/scale-out.md`; the server then keeps no state of its
    /// own and any number of servers may share the cluster).
    pub backend: StorageBackend,
    /// Garage S3 API endpoints, one per node (`http://host:port`), the
    /// server fails over between them. INI `garage_s3_endpoints`
    /// (comma-separated).
    pub garage_s3_endpoints: Vec<String>,
    /// Garage K2V API endpoints, one per node. INI `garage_k2v_endpoints`
    /// (comma-separated).
    pub garage_k2v_endpoints: Vec<String>,
    /// The Garage bucket holding everything. INI `garage_bucket`.
    pub garage_bucket: Option<String>,
    /// Garage access key id (`GK…`) with read and write on the bucket. INI
    /// `garage_key_id`.
    pub garage_key_id: Option<String>,
    /// File holding the secret access key of `garage_key_id`. INI
    /// `garage_secret_key_file`.
    pub garage_secret_key_file: Option<PathBuf>,
    /// The region Garage is configured with (its `s3_region`). INI
    /// `garage_region`, default `garage`.
    pub garage_region: String,
}

/// Which storage the server uses (INI `backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageBackend {
    /// SQLite files and a blob directory under `data_path`.
    #[default]
    Embedded,
    /// A Garage cluster (S3 + K2V); needs the `garage_*` options.
    Garage,
}

/// The inputs of [`Config::load`], lowest precedence first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigLayers {
    /// `data_path` when nothing else names one.
    pub default_data_path: PathBuf,
    /// Text of the INI configuration file, if there is one.
    pub ini: Option<String>,
    /// Environment variables (see [`Config::apply_env`]); others are ignored.
    pub env: Vec<(String, String)>,
    /// An explicit data directory (`--data-path`), overriding the INI file.
    pub data_path: Option<PathBuf>,
}

impl Config {
    /// Defaults for a server keeping its state in `data_path`.
    pub fn new(data_path: impl Into<PathBuf>) -> Config {
        Config {
            data_path: data_path.into(),
            users_address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_USERS_PORT)),
            services_address: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_SERVICES_PORT)),
            tls_cert_file: None,
            tls_key_file: None,
            blobs: true,
            blobs_path: None,
            concurrent_blob_writes: 50,
            services_tokens_file: None,
            batching: true,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            shared_doc_max_bytes: DEFAULT_SHARED_DOC_MAX_BYTES,
            per_user_blob_writes: 0,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            http2_keep_alive_interval: DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
            http2_keep_alive_timeout: DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_sync_exchanges_per_user: DEFAULT_MAX_SYNC_EXCHANGES_PER_USER,
            shared_misses_per_minute: DEFAULT_SHARED_MISSES_PER_MINUTE,
            deleted_blob_retention: DEFAULT_DELETED_BLOB_RETENTION,
            processing_threshold: crate::incoming::DEFAULT_PROCESSING_THRESHOLD,
            live_wait: DEFAULT_LIVE_WAIT,
            live_waits_per_user: DEFAULT_LIVE_WAITS_PER_USER,
            max_live_waits: DEFAULT_MAX_LIVE_WAITS,
            backend: StorageBackend::Embedded,
            garage_s3_endpoints: Vec::new(),
            garage_k2v_endpoints: Vec::new(),
            garage_bucket: None,
            garage_key_id: None,
            garage_secret_key_file: None,
            garage_region: "garage".to_owned(),
        }
    }

    /// Defaults for tests and embedding: both APIs on `127.0.0.1` with port 0
    /// (a free port chosen by the system).
    pub fn loopback(data_path: impl Into<PathBuf>) -> Config {
        let mut config = Config::new(data_path);
        config.users_address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config.services_address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config
    }

    /// Where blobs are stored.
    pub fn blobs_dir(&self) -> PathBuf {
        self.blobs_path
            .clone()
            .unwrap_or_else(|| self.data_path.join("blobs"))
    }

    /// The services tokens file.
    pub fn services_tokens_path(&self) -> PathBuf {
        self.services_tokens_file
            .clone()
            .unwrap_or_else(|| self.data_path.join("services.tokens"))
    }

    /// The user token store (SQLite).
    pub fn token_store_path(&self) -> PathBuf {
        self.data_path.join("tokens.sqlite")
    }

    /// The incoming box's claims and failed versions (SQLite).
    pub fn incoming_store_path(&self) -> PathBuf {
        self.data_path.join("incoming.sqlite")
    }

    /// The shared store of key backups (SQLite).
    pub fn shared_store_path(&self) -> PathBuf {
        self.data_path.join("shared.sqlite")
    }

    /// The per-user cap on blob writes in effect (resolving 0 to its default).
    pub fn effective_per_user_blob_writes(&self) -> usize {
        match self.per_user_blob_writes {
            0 => crate::blobs::default_per_user_writes(self.concurrent_blob_writes),
            n => n.min(self.concurrent_blob_writes.max(1)),
        }
    }

    /// Directory of the per-user document databases (`user-<uuid>`).
    pub fn user_dbs_dir(&self) -> PathBuf {
        self.data_path.join("users")
    }

    /// Applies the `[soledad-server]` section of an INI text (the seed's
    /// configuration file format). Unknown options are refused; the seed's
    /// CouchDB options are accepted and ignored with a warning.
    ///
    /// # Errors
    /// [`Error::Config`] naming the offending option (or `config file` when the
    /// text is not INI).
    pub fn apply_ini(&mut self, text: &str) -> Result<(), Error> {
        let ini = ini::Ini::load_from_str(text)
            .map_err(|e| Error::config("config file", e.to_string()))?;
        let Some(section) = ini.section(Some(INI_SECTION)) else {
            return Ok(());
        };
        for (key, value) in section.iter() {
            self.apply_option(key, value.trim())?;
        }
        Ok(())
    }

    fn apply_option(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "data_path" => self.data_path = non_empty_path(key, value)?,
            "users_address" => self.users_address = parse(key, value)?,
            "services_address" => self.services_address = parse(key, value)?,
            "tls_cert_file" => self.tls_cert_file = Some(non_empty_path(key, value)?),
            "tls_key_file" => self.tls_key_file = Some(non_empty_path(key, value)?),
            "blobs" => self.blobs = parse_bool(key, value)?,
            "blobs_path" => self.blobs_path = Some(non_empty_path(key, value)?),
            "concurrent_blob_writes" => self.concurrent_blob_writes = parse(key, value)?,
            "services_tokens_file" => self.services_tokens_file = Some(non_empty_path(key, value)?),
            "batching" => self.batching = parse_bool(key, value)?,
            "quota_bytes" => self.quota_bytes = parse(key, value)?,
            "shared_doc_max_bytes" => self.shared_doc_max_bytes = parse(key, value)?,
            "per_user_blob_writes" => self.per_user_blob_writes = parse(key, value)?,
            "header_read_timeout_secs" => self.header_read_timeout = secs(key, value)?,
            "idle_timeout_secs" => self.idle_timeout = secs(key, value)?,
            "tls_handshake_timeout_secs" => self.tls_handshake_timeout = secs(key, value)?,
            "http2_keep_alive_interval_secs" => {
                self.http2_keep_alive_interval = secs(key, value)?;
            }
            "http2_keep_alive_timeout_secs" => self.http2_keep_alive_timeout = secs(key, value)?,
            "body_timeout_secs" => self.body_timeout = secs(key, value)?,
            "max_connections" => self.max_connections = parse(key, value)?,
            "max_sync_exchanges_per_user" => {
                self.max_sync_exchanges_per_user = parse(key, value)?;
            }
            "shared_misses_per_minute" => self.shared_misses_per_minute = parse(key, value)?,
            "deleted_blob_retention_days" => {
                let days: u64 = parse(key, value)?;
                let secs = days
                    .checked_mul(24 * 60 * 60)
                    .ok_or_else(|| Error::config(key, "too many days"))?;
                self.deleted_blob_retention = Duration::from_secs(secs);
            }
            "processing_threshold_secs" => self.processing_threshold = secs(key, value)?,
            "live_wait_secs" => self.live_wait = secs(key, value)?,
            "live_waits_per_user" => self.live_waits_per_user = parse(key, value)?,
            "max_live_waits" => self.max_live_waits = parse(key, value)?,
            "backend" => {
                self.backend = match value {
                    "embedded" => StorageBackend::Embedded,
                    "garage" => StorageBackend::Garage,
                    _ => return Err(Error::config(key, "must be `embedded` or `garage`")),
                };
            }
            "garage_s3_endpoints" => self.garage_s3_endpoints = endpoints(key, value)?,
            "garage_k2v_endpoints" => self.garage_k2v_endpoints = endpoints(key, value)?,
            "garage_bucket" => self.garage_bucket = Some(non_empty(key, value)?),
            "garage_key_id" => self.garage_key_id = Some(non_empty(key, value)?),
            "garage_secret_key_file" => {
                self.garage_secret_key_file = Some(non_empty_path(key, value)?);
            }
            "garage_region" => self.garage_region = non_empty(key, value)?,
            legacy if LEGACY_OPTIONS.contains(&legacy) => {
                tracing::warn!(option = legacy, "ignoring CouchDB-era option");
            }
            unknown => return Err(Error::config(unknown, "unknown option")),
        }
        Ok(())
    }

    /// Applies environment overrides: `HTTPS_PORT` and `LOCAL_SERVICES_PORT`
    /// (as in the seed). Other variables are ignored.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when its value is not a port.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref().trim());
            match key {
                "HTTPS_PORT" => self.users_address.set_port(parse(key, value)?),
                "LOCAL_SERVICES_PORT" => self.services_address.set_port(parse(key, value)?),
                _ => {}
            }
        }
        Ok(())
    }

    /// Builds a configuration from its layers, lowest precedence first, as
    /// the `soledad-server` binary does: defaults under
    /// `layers.default_data_path`, the INI text, the environment overrides
    /// ([`Config::apply_env`]), then `layers.data_path`; validated. The
    /// library reads neither files nor the environment: the caller hands in
    /// their contents.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad option or variable.
    pub fn load(layers: ConfigLayers) -> Result<Config, Error> {
        let mut config = Config::new(layers.default_data_path);
        if let Some(text) = &layers.ini {
            config.apply_ini(text)?;
        }
        config.apply_env(layers.env)?;
        if let Some(path) = layers.data_path {
            config.data_path = path;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every option; called by `Server::start`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad option.
    pub fn validate(&self) -> Result<(), Error> {
        if self.data_path.as_os_str().is_empty() {
            return Err(Error::config("data_path", "must not be empty"));
        }
        if !self.services_address.ip().is_loopback() {
            return Err(Error::config(
                "services_address",
                "the services API must listen on a loopback address (e.g. 127.0.0.1)",
            ));
        }
        if self.users_address.port() != 0
            && self.users_address.port() == self.services_address.port()
            && (self.users_address.ip().is_unspecified()
                || self.users_address.ip() == self.services_address.ip())
        {
            return Err(Error::config(
                "services_address",
                "must not use the same port as users_address",
            ));
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(Error::config("tls_key_file", "required with tls_cert_file"));
            }
            (None, Some(_)) => {
                return Err(Error::config("tls_cert_file", "required with tls_key_file"));
            }
            _ => {}
        }
        if self.concurrent_blob_writes == 0 {
            return Err(Error::config(
                "concurrent_blob_writes",
                "must be at least 1",
            ));
        }
        if self.quota_bytes == 0 {
            return Err(Error::config("quota_bytes", "must be at least 1"));
        }
        if self.backend == StorageBackend::Garage {
            if cfg!(not(feature = "garage")) {
                return Err(Error::config(
                    "backend",
                    "this build has no Garage support (cargo feature `garage`)",
                ));
            }
            if self.garage_s3_endpoints.is_empty() {
                return Err(Error::config(
                    "garage_s3_endpoints",
                    "required with backend = garage",
                ));
            }
            if self.garage_k2v_endpoints.is_empty() {
                return Err(Error::config(
                    "garage_k2v_endpoints",
                    "required with backend = garage",
                ));
            }
            for (option, value) in [
                ("garage_bucket", self.garage_bucket.is_none()),
                ("garage_key_id", self.garage_key_id.is_none()),
                (
                    "garage_secret_key_file",
                    self.garage_secret_key_file.is_none(),
                ),
            ] {
                if value {
                    return Err(Error::config(option, "required with backend = garage"));
                }
            }
        }
        if self.processing_threshold.is_zero() {
            return Err(Error::config(
                "processing_threshold_secs",
                "must be at least 1",
            ));
        }
        if self.shared_doc_max_bytes == 0 || self.shared_doc_max_bytes > MAX_SHARED_DOC_MAX_BYTES {
            return Err(Error::config(
                "shared_doc_max_bytes",
                format!("must be between 1 and {MAX_SHARED_DOC_MAX_BYTES}"),
            ));
        }
        if self.per_user_blob_writes > self.concurrent_blob_writes {
            return Err(Error::config(
                "per_user_blob_writes",
                "must not exceed concurrent_blob_writes (0 for the default)",
            ));
        }
        for (option, value) in [
            ("header_read_timeout_secs", self.header_read_timeout),
            ("idle_timeout_secs", self.idle_timeout),
            ("tls_handshake_timeout_secs", self.tls_handshake_timeout),
            (
                "http2_keep_alive_timeout_secs",
                self.http2_keep_alive_timeout,
            ),
            ("body_timeout_secs", self.body_timeout),
            ("live_wait_secs", self.live_wait),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(Error::config(
                    option,
                    format!("must be between 1 and {} seconds", MAX_TIMEOUT.as_secs()),
                ));
            }
        }
        if self.http2_keep_alive_interval > MAX_TIMEOUT {
            return Err(Error::config(
                "http2_keep_alive_interval_secs",
                format!("must be at most {} seconds", MAX_TIMEOUT.as_secs()),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::config("max_connections", "must be at least 1"));
        }
        if self.live_waits_per_user == 0 {
            return Err(Error::config("live_waits_per_user", "must be at least 1"));
        }
        if self.max_live_waits < self.live_waits_per_user {
            return Err(Error::config(
                "max_live_waits",
                "must be at least live_waits_per_user",
            ));
        }
        if self.max_sync_exchanges_per_user == 0 {
            return Err(Error::config(
                "max_sync_exchanges_per_user",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| Error::config(key, format!("cannot parse {value:?}: {e}")))
}

/// A whole number of seconds.
fn secs(key: &str, value: &str) -> Result<Duration, Error> {
    parse::<u64>(key, value).map(Duration::from_secs)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            key,
            format!("expected true or false, got {value:?}"),
        )),
    }
}

fn non_empty_path(key: &str, value: &str) -> Result<PathBuf, Error> {
    if value.is_empty() {
        return Err(Error::config(key, "must not be empty"));
    }
    Ok(Path::new(value).to_path_buf())
}

fn non_empty(key: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() {
        Err(Error::config(key, "must not be empty"))
    } else {
        Ok(value.to_owned())
    }
}

/// A comma-separated list of `http://` or `https://` URLs.
fn endpoints(key: &str, value: &str) -> Result<Vec<String>, Error> {
    let list: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        return Err(Error::config(key, "needs at least one endpoint"));
    }
    if let Some(bad) = list
        .iter()
        .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
    {
        return Err(Error::config(
            key,
            format!("`{bad}` is not an http:// or https:// URL"),
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_option(result: Result<(), Error>) -> String {
        match result {
            Err(Error::Config { option, .. }) => option,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn deleted_blob_retention_is_read_in_days() {
        let mut config = Config::new("/data");
        assert_eq!(
            config.deleted_blob_retention,
            DEFAULT_DELETED_BLOB_RETENTION
        );
        config
            .apply_ini("[soledad-server]\ndeleted_blob_retention_days = 7\n")
            .unwrap();
        assert_eq!(
            config.deleted_blob_retention,
            Duration::from_secs(7 * 24 * 3600)
        );
        for bad in ["-1", "soon", "999999999999999999"] {
            let err = config.apply_ini(&format!(
                "[soledad-server]\ndeleted_blob_retention_days = {bad}\n"
            ));
            assert_eq!(bad_option(err), "deleted_blob_retention_days", "{bad}");
        }
    }

    #[test]
    fn ini_sets_seed_and_own_options() {
        let mut config = Config::new("/data");
        config
            .apply_ini(
                "[soledad-server]\nblobs = false\nblobs_path = /srv/blobs\n\
                 concurrent_blob_writes = 7\nservices_tokens_file = /etc/t\n\
                 couch_url = http://x\nquota_bytes = 1000\n",
            )
            .unwrap();
        assert!(!config.blobs);
        assert_eq!(config.blobs_dir(), PathBuf::from("/srv/blobs"));
        assert_eq!(config.concurrent_blob_writes, 7);
        assert_eq!(config.services_tokens_path(), PathBuf::from("/etc/t"));
        assert_eq!(config.quota_bytes, 1000);
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_option() {
        let mut config = Config::new("/data");
        let err = config.apply_ini("[soledad-server]\nconcurrent_blob_writes = many\n");
        assert_eq!(bad_option(err), "concurrent_blob_writes");
        let err = config.apply_ini("[soledad-server]\nblobs = maybe\n");
        assert_eq!(bad_option(err), "blobs");
        let err = config.apply_ini("[soledad-server]\nblob_path = /x\n");
        assert_eq!(bad_option(err), "blob_path");
        let err = config.apply_env([("HTTPS_PORT", "70000")]);
        assert_eq!(bad_option(err), "HTTPS_PORT");
    }

    #[test]
    fn validate_refuses_public_services_api() {
        let mut config = Config::new("/data");
        config.services_address = "0.0.0.0:2525".parse().unwrap();
        assert_eq!(bad_option(config.validate()), "services_address");
        let mut config = Config::new("/data");
        config.tls_cert_file = Some("/c.pem".into());
        assert_eq!(bad_option(config.validate()), "tls_key_file");
        let mut config = Config::new("/data");
        config.concurrent_blob_writes = 0;
        assert_eq!(bad_option(config.validate()), "concurrent_blob_writes");
    }

    #[test]
    fn example_file_is_valid() {
        let mut config = Config::new("/default");
        config
            .apply_ini(include_str!("../soledad-server.conf.example"))
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.data_path, PathBuf::from("/var/lib/soledad"));
        assert_eq!(config.users_address.port(), DEFAULT_USERS_PORT);
        assert_eq!(config.services_address.port(), DEFAULT_SERVICES_PORT);
        assert_eq!(config.quota_bytes, DEFAULT_QUOTA_BYTES);
        assert_eq!(config.shared_doc_max_bytes, DEFAULT_SHARED_DOC_MAX_BYTES);
        // The example documents every hardening option with its default.
        assert_eq!(config, {
            let mut defaults = Config::new("/var/lib/soledad");
            defaults.services_tokens_file = config.services_tokens_file.clone();
            defaults
        });
    }

    #[test]
    fn hardening_options_are_typed_and_checked() {
        let mut config = Config::new("/data");
        config
            .apply_ini(
                "[soledad-server]\nidle_timeout_secs = 2\nbody_timeout_secs = 3\n\
                 header_read_timeout_secs = 4\ntls_handshake_timeout_secs = 5\n\
                 http2_keep_alive_interval_secs = 0\nhttp2_keep_alive_timeout_secs = 6\n\
                 max_connections = 10\nmax_sync_exchanges_per_user = 2\n\
                 shared_misses_per_minute = 7\nconcurrent_blob_writes = 3\n",
            )
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.idle_timeout, Duration::from_secs(2));
        assert_eq!(config.body_timeout, Duration::from_secs(3));
        assert_eq!(config.header_read_timeout, Duration::from_secs(4));
        assert_eq!(config.tls_handshake_timeout, Duration::from_secs(5));
        assert_eq!(config.http2_keep_alive_interval, Duration::ZERO);
        assert_eq!(config.http2_keep_alive_timeout, Duration::from_secs(6));
        assert_eq!(config.max_connections, 10);
        assert_eq!(config.max_sync_exchanges_per_user, 2);
        assert_eq!(config.shared_misses_per_minute, 7);
        assert_eq!(config.effective_per_user_blob_writes(), 1);
        config.per_user_blob_writes = 2;
        assert_eq!(config.effective_per_user_blob_writes(), 2);
        config.per_user_blob_writes = 4;
        assert_eq!(bad_option(config.validate()), "per_user_blob_writes");
        for (option, text) in [
            ("idle_timeout_secs", "0"),
            ("body_timeout_secs", "0"),
            ("header_read_timeout_secs", "999999999"),
            ("max_connections", "0"),
            ("max_sync_exchanges_per_user", "0"),
        ] {
            let mut config = Config::new("/data");
            config
                .apply_ini(&format!("[soledad-server]\n{option} = {text}\n"))
                .unwrap();
            assert_eq!(bad_option(config.validate()), option, "{option}");
        }
        let mut config = Config::new("/data");
        config
            .apply_ini(
                "[soledad-server]\nlive_wait_secs = 3\nlive_waits_per_user = 2\n\
                 max_live_waits = 5\n",
            )
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.live_wait, Duration::from_secs(3));
        assert_eq!(config.live_waits_per_user, 2);
        assert_eq!(config.max_live_waits, 5);
        for (option, text) in [
            ("live_wait_secs", "0"),
            ("live_waits_per_user", "0"),
            ("max_live_waits", "1"),
        ] {
            let mut config = Config::new("/data");
            config
                .apply_ini(&format!("[soledad-server]\n{option} = {text}\n"))
                .unwrap();
            assert_eq!(bad_option(config.validate()), option, "{option}");
        }
        let mut config = Config::new("/data");
        let err = config.apply_ini("[soledad-server]\nbody_timeout_secs = 1.5\n");
        assert_eq!(bad_option(err), "body_timeout_secs");
    }

    #[test]
    fn env_overrides_ports() {
        let mut config = Config::new("/data");
        config
            .apply_env([
                ("HTTPS_PORT", "4430"),
                ("LOCAL_SERVICES_PORT", "0"),
                ("X", "y"),
            ])
            .unwrap();
        assert_eq!(config.users_address.port(), 4430);
        assert_eq!(config.services_address.port(), 0);
    }

    #[test]
    fn load_layers_defaults_ini_env_then_data_path() {
        let layers = |data_path: Option<&str>| ConfigLayers {
            default_data_path: PathBuf::from("/default"),
            ini: Some("[soledad-server]\ndata_path = /from-ini\nquota_bytes = 5\n".to_owned()),
            env: vec![("HTTPS_PORT".to_owned(), "4430".to_owned())],
            data_path: data_path.map(PathBuf::from),
        };
        let config = Config::load(layers(None)).unwrap();
        assert_eq!(config.data_path, PathBuf::from("/from-ini"));
        assert_eq!(config.quota_bytes, 5);
        assert_eq!(config.users_address.port(), 4430);
        let config = Config::load(layers(Some("/flag"))).unwrap();
        assert_eq!(config.data_path, PathBuf::from("/flag"));
        let bare = Config::load(ConfigLayers {
            default_data_path: PathBuf::from("/default"),
            ..ConfigLayers::default()
        })
        .unwrap();
        assert_eq!(bare, Config::new("/default"));
        // Validated: a bad value fails, naming the option.
        let bad = Config::load(ConfigLayers {
            default_data_path: PathBuf::from("/default"),
            ini: Some("[soledad-server]\nquota_bytes = 0\n".to_owned()),
            ..ConfigLayers::default()
        });
        assert!(matches!(bad, Err(Error::Config { option, .. }) if option == "quota_bytes"));
    }

    #[test]
    fn garage_backend_options_are_parsed_and_required() {
        let mut config = Config::new("/tmp/x");
        config
            .apply_ini(
                "[soledad-server]\nbackend = garage\n\
                 garage_s3_endpoints = http://127.0.0.1:3900, http://127.0.0.1:3910\n\
                 garage_k2v_endpoints = http://127.0.0.1:3904\n\
                 garage_bucket = soledad\ngarage_key_id = GK1\n\
                 garage_secret_key_file = /etc/soledad/garage.secret\n",
            )
            .unwrap();
        assert_eq!(config.backend, StorageBackend::Garage);
        assert_eq!(config.garage_s3_endpoints.len(), 2);
        assert_eq!(config.garage_region, "garage");
        if cfg!(feature = "garage") {
            config.validate().unwrap();
        }
        let mut partial = Config::new("/tmp/x");
        partial
            .apply_ini("[soledad-server]\nbackend = garage\ngarage_s3_endpoints = http://a:1\n")
            .unwrap();
        let error = partial.validate().unwrap_err().to_string();
        assert!(error.contains("garage"), "{error}");
        let bad = Config::new("/tmp/x")
            .apply_ini("[soledad-server]\ngarage_k2v_endpoints = ftp://a\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("garage_k2v_endpoints"), "{bad}");
    }
}
