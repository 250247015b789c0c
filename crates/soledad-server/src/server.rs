//! Starting and stopping the two listeners.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::{Control, Handle};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{ServiceTokens, SqliteTokenStore, TokenStore};
use crate::blobs::{BlobBackend, FsBlobConfig, FsBlobStore, QuotaCounters, QuotaLedger};
use crate::config::Config;
use crate::conn::LimitAcceptor;
use crate::docsync::{DocStoreUsage, UserStores};
use crate::error::Error;
use crate::incoming::{EmbeddedIncomingBox, IncomingBox};
use crate::limits::{MissLimiter, UserSlots};
use crate::notify::{ChangeNotifier, InProcessNotifier, NotifyingDocStores, WaitSlots};
use crate::routes::{AppState, services_router, users_router};
use crate::shared::{SharedStore, SqliteSharedStore};
use crate::tls;
use crate::userdb::{EmbeddedUserDocStores, UserDocStores};

/// How long a graceful shutdown waits for requests in flight before closing
/// their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Entry point: `Server::start(config)` for the embedded backends, or
/// [`Server::builder`] to plug other storage behind the same traits.
#[derive(Debug)]
pub struct Server;

/// Builds a server with chosen storage backends; any not given is the embedded
/// default under `config.data_path`.
pub struct ServerBuilder {
    config: Config,
    tokens: Option<Arc<dyn TokenStore>>,
    shared: Option<Arc<dyn SharedStore>>,
    blobs: Option<Arc<dyn BlobBackend>>,
    user_docs: Option<Arc<dyn UserDocStores>>,
    notifier: Option<Arc<dyn ChangeNotifier>>,
    quota: Option<Arc<dyn QuotaCounters>>,
}

impl Server {
    /// Starts a server with the embedded backends.
    ///
    /// # Errors
    /// See [`ServerBuilder::start`].
    pub async fn start(config: Config) -> Result<RunningServer, Error> {
        Server::builder(config).start().await
    }

    /// A builder to replace storage backends.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            tokens: None,
            shared: None,
            blobs: None,
            user_docs: None,
            notifier: None,
            quota: None,
        }
    }
}

impl ServerBuilder {
    /// Uses `tokens` instead of the embedded token store.
    pub fn token_store(mut self, tokens: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Uses `shared` instead of the embedded shared store.
    pub fn shared_store(mut self, shared: Arc<dyn SharedStore>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Uses `blobs` instead of the embedded filesystem blob store.
    pub fn blob_backend(mut self, blobs: Arc<dyn BlobBackend>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Uses `stores` instead of the embedded per-user document stores (the
    /// sync routes' storage). Their content is then not measured into the
    /// quota after a restart unless `stores` registers its own usage source.
    pub fn user_doc_stores(mut self, stores: Arc<dyn UserDocStores>) -> Self {
        self.user_docs = Some(stores);
        self
    }

    /// Uses `notifier` instead of the in-process [`InProcessNotifier`] to
    /// announce writes and answer change requests (`GET /changes/{uuid}`),
    /// e.g. one shared by several server processes.
    pub fn change_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Keeps the quota counts in `counters` instead of the embedded,
    /// in-process [`EmbeddedQuotaCounters`](crate::blobs::EmbeddedQuotaCounters)
    /// (the limit stays `config.quota_bytes`). The embedded stores register
    /// their usage sources on it; see [`QuotaCounters`] for what it must do.
    pub fn quota_ledger(mut self, counters: Arc<dyn QuotaCounters>) -> Self {
        self.quota = Some(counters);
        self
    }

    /// Validates the configuration, opens the stores, loads or generates the
    /// certificate, binds both listeners and starts serving.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad option, [`Error::Certificate`],
    /// [`Error::Io`] (e.g. a port in use), [`Error::Database`], [`Error::Blob`].
    pub async fn start(self) -> Result<RunningServer, Error> {
        self.config.validate()?;
        // Opening files and SQLite blocks: keep it off the async workers.
        let ready = tokio::task::spawn_blocking(move || self.prepare())
            .await
            .map_err(|_| Error::StorageUnavailable)??;
        ready.serve()
    }

    fn prepare(self) -> Result<Prepared, Error> {
        let config = self.config;
        std::fs::create_dir_all(&config.data_path).map_err(Error::io("creating data_path"))?;
        let garage = garage_backend(&config)?;
        let tokens = match (self.tokens, &garage) {
            (Some(tokens), _) => tokens,
            #[cfg(feature = "garage")]
            (None, Some(garage)) => Arc::new(garage.token_store()),
            (None, _) => Arc::new(SqliteTokenStore::open(&config.token_store_path())?),
        };
        let (shared, shared_usage): (Arc<dyn SharedStore>, _) = match (self.shared, &garage) {
            (Some(shared), _) => (shared, None),
            #[cfg(feature = "garage")]
            (None, Some(garage)) => (
                Arc::new(garage.shared_store()) as Arc<dyn SharedStore>,
                None,
            ),
            (None, _) => {
                let store = SqliteSharedStore::open(&config.shared_store_path())?;
                let usage = store.usage_source();
                (Arc::new(store), Some(usage))
            }
        };
        // With `backend = garage`, quota counts live in the cluster too
        // (shared by every server; docs/scale-out.md).
        #[cfg(feature = "garage")]
        let quota = match (self.quota, &garage) {
            (Some(counters), _) => Some(counters),
            (None, Some(garage)) => Some(Arc::new(
                garage
                    .quota_counters()
                    .map_err(|e| Error::config("backend", e.to_string()))?,
            ) as Arc<dyn QuotaCounters>),
            (None, None) => None,
        };
        #[cfg(not(feature = "garage"))]
        let quota = self.quota;
        let new_ledger = move || {
            Arc::new(match quota {
                Some(counters) => QuotaLedger::with_counters(config.quota_bytes, counters),
                None => QuotaLedger::new(config.quota_bytes),
            })
        };
        let (blobs, ledger): (Option<Arc<dyn BlobBackend>>, Arc<QuotaLedger>) =
            match (config.blobs, self.blobs, &garage) {
                (false, _, _) => (None, new_ledger()),
                (true, Some(blobs), _) => (Some(blobs), new_ledger()),
                #[cfg(feature = "garage")]
                (true, None, Some(garage)) => {
                    let ledger = new_ledger();
                    let store = garage.blob_store_with_ledger(
                        Arc::clone(&ledger),
                        config.deleted_blob_retention,
                    )?;
                    (Some(Arc::new(store) as Arc<dyn BlobBackend>), ledger)
                }
                (true, None, _) => {
                    let ledger = new_ledger();
                    let store = FsBlobStore::open_with_ledger(
                        FsBlobConfig {
                            root: config.blobs_dir(),
                            concurrent_blob_writes: config.concurrent_blob_writes,
                            per_user_blob_writes: config.effective_per_user_blob_writes(),
                            quota_bytes: config.quota_bytes,
                            deleted_retention: config.deleted_blob_retention,
                        },
                        Arc::clone(&ledger),
                    )?;
                    (Some(Arc::new(store) as Arc<dyn BlobBackend>), ledger)
                }
            };
        let user_stores: Arc<dyn UserDocStores> = match (self.user_docs, &garage) {
            (Some(stores), _) => stores,
            #[cfg(feature = "garage")]
            (None, Some(garage)) => {
                let stores = Arc::new(garage.user_doc_stores());
                ledger.register_source(Arc::clone(&stores) as Arc<dyn crate::blobs::UsageSource>);
                stores
            }
            (None, _) => {
                let user_dbs = EmbeddedUserDocStores::new(config.user_dbs_dir());
                // Document stores count against the same quota as blobs.
                ledger.register_source(Arc::new(DocStoreUsage(user_dbs.clone())));
                Arc::new(UserStores::new(user_dbs))
            }
        };
        let notifier: Arc<dyn ChangeNotifier> = match (self.notifier, &garage) {
            (Some(notifier), _) => notifier,
            // Every server over the cluster wakes every waiting device.
            #[cfg(feature = "garage")]
            (None, Some(garage)) => Arc::new(garage.change_notifier()),
            (None, _) => Arc::new(InProcessNotifier::new()),
        };
        // Every batch a sync commits is announced, whatever the backend.
        let user_stores: Arc<dyn UserDocStores> =
            Arc::new(NotifyingDocStores::new(user_stores, Arc::clone(&notifier)));
        // So do shared documents (key backups) of the embedded store.
        if let Some(usage) = shared_usage {
            ledger.register_source(usage);
        }
        let services = Arc::new(ServiceTokens::load(&config.services_tokens_path())?);
        let tls = tls::load(&config)?;
        let users_listener = bind(config.users_address, "binding the users API address")?;
        let services_listener = bind(config.services_address, "binding the services API address")?;
        let incoming = match (blobs.as_ref(), &garage) {
            (None, _) => None,
            #[cfg(feature = "garage")]
            (Some(blobs), Some(garage)) => Some(Arc::new(
                garage.incoming_box(Arc::clone(blobs), config.processing_threshold),
            ) as Arc<dyn IncomingBox>),
            (Some(blobs), _) => Some(Arc::new(EmbeddedIncomingBox::open(
                Arc::clone(blobs),
                config.processing_threshold,
                &config.incoming_store_path(),
            )?) as Arc<dyn IncomingBox>),
        };
        let stopping = CancellationToken::new();
        Ok(Prepared {
            state: AppState {
                shared,
                blobs,
                batching: config.batching,
                quota_bytes: config.quota_bytes,
                shared_doc_max_bytes: config.shared_doc_max_bytes,
                user_stores,
                ledger: Some(ledger),
                sync_slots: Arc::new(UserSlots::new(config.max_sync_exchanges_per_user)),
                shared_misses: Arc::new(MissLimiter::new(config.shared_misses_per_minute)),
                body_timeout: config.body_timeout,
                incoming,
                tokens: Arc::clone(&tokens),
                notifier,
                live_waits: Arc::new(WaitSlots::new(
                    config.live_waits_per_user,
                    config.max_live_waits,
                )),
                live_wait: config.live_wait,
                stopping: stopping.clone(),
            },
            stopping,
            limits: ConnectionLimits::of(&config),
            tokens,
            services,
            cert_path: tls.cert_path,
            rustls: tls.server_config,
            users_listener,
            services_listener,
        })
    }
}

/// The Garage backend when the configuration asks for it (`backend = garage`).
#[cfg(feature = "garage")]
pub(crate) fn garage_backend(
    config: &Config,
) -> Result<Option<crate::garage::GarageBackend>, Error> {
    use crate::garage::{GarageBackend, GarageConfig, SecretKey};
    if config.backend != crate::config::StorageBackend::Garage {
        return Ok(None);
    }
    let missing = |option: &str| Error::config(option, "required with backend = garage");
    let secret_file = config
        .garage_secret_key_file
        .as_ref()
        .ok_or_else(|| missing("garage_secret_key_file"))?;
    let secret = SecretKey::from_file(secret_file)
        .map_err(|e| Error::config("garage_secret_key_file", e.to_string()))?;
    let garage = GarageConfig::new(
        config.garage_s3_endpoints.clone(),
        config.garage_k2v_endpoints.clone(),
        config
            .garage_bucket
            .clone()
            .ok_or_else(|| missing("garage_bucket"))?,
        config.garage_region.clone(),
        config
            .garage_key_id
            .clone()
            .ok_or_else(|| missing("garage_key_id"))?,
        secret,
    );
    GarageBackend::connect(garage)
        .map(Some)
        .map_err(|e| Error::config("garage_k2v_endpoints", e.to_string()))
}

/// Without the `garage` feature there is no Garage backend (`validate`
/// refuses `backend = garage`).
#[cfg(not(feature = "garage"))]
fn garage_backend(_config: &Config) -> Result<Option<std::convert::Infallible>, Error> {
    Ok(None)
}

fn bind(address: SocketAddr, context: &'static str) -> Result<std::net::TcpListener, Error> {
    std::net::TcpListener::bind(address).map_err(Error::io(context))
}

/// The connection-level limits of both APIs (see [`Config`]).
#[derive(Clone, Copy)]
struct ConnectionLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    tls_handshake_timeout: Duration,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Duration,
    max_connections: usize,
}

impl ConnectionLimits {
    fn of(config: &Config) -> Self {
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            tls_handshake_timeout: config.tls_handshake_timeout,
            http2_keep_alive_interval: Some(config.http2_keep_alive_interval)
                .filter(|interval| !interval.is_zero()),
            http2_keep_alive_timeout: config.http2_keep_alive_timeout,
            max_connections: config.max_connections,
        }
    }

    /// Applies the HTTP-level timeouts to a listener's connection builder.
    fn apply(&self, builder: &mut Builder<TokioExecutor>) {
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Some(self.header_read_timeout));
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(self.http2_keep_alive_interval)
            .keep_alive_timeout(self.http2_keep_alive_timeout);
    }
}

struct Prepared {
    limits: ConnectionLimits,
    stopping: CancellationToken,
    state: AppState,
    tokens: Arc<dyn TokenStore>,
    services: Arc<ServiceTokens>,
    cert_path: PathBuf,
    rustls: Arc<rustls::ServerConfig>,
    users_listener: std::net::TcpListener,
    services_listener: std::net::TcpListener,
}

impl Prepared {
    fn serve(self) -> Result<RunningServer, Error> {
        let users_addr = self
            .users_listener
            .local_addr()
            .map_err(Error::io("reading the users API address"))?;
        let services_addr = self
            .services_listener
            .local_addr()
            .map_err(Error::io("reading the services API address"))?;
        let control = Control::new();

        let users_app = users_router(
            self.state.clone(),
            self.tokens.clone(),
            self.services.clone(),
        );
        // TCP_NODELAY: small responses (headers, then a short body in another
        // TLS record) must not wait for the peer's delayed ACK (~40 ms).
        let limits = self.limits;
        let tls = RustlsAcceptor::new(RustlsConfig::from_config(self.rustls))
            .handshake_timeout(limits.tls_handshake_timeout)
            .acceptor(NoDelayAcceptor::new());
        let mut users = axum_server::from_tcp(self.users_listener)
            .map_err(Error::io("starting the users API"))?
            .acceptor(LimitAcceptor::new(
                tls,
                limits.max_connections,
                limits.idle_timeout,
            ))
            .first_request_timeout(limits.idle_timeout)
            .handle(Handle::with_control(control.clone()));
        users.http_builder().http2().adaptive_window(true);
        limits.apply(users.http_builder());
        let users_task = tokio::spawn(users.serve(users_app.into_make_service()));

        let services_app = services_router(self.state, self.tokens, self.services);
        let mut services = axum_server::from_tcp(self.services_listener)
            .map_err(Error::io("starting the services API"))?
            .acceptor(LimitAcceptor::new(
                NoDelayAcceptor::new(),
                limits.max_connections,
                limits.idle_timeout,
            ))
            .first_request_timeout(limits.idle_timeout)
            .handle(Handle::with_control(control.clone()));
        limits.apply(services.http_builder());
        let services_task = tokio::spawn(services.serve(services_app.into_make_service()));

        tracing::info!(
            users_api = %users_addr,
            services_api = %services_addr,
            cert_file = %self.cert_path.display(),
            "soledad-server listening (give clients cert_file to trust)"
        );
        Ok(RunningServer {
            users_addr,
            services_addr,
            cert_path: self.cert_path,
            control,
            stopping: self.stopping,
            tasks: vec![users_task, services_task],
        })
    }
}

/// A started server. Dropping it leaves the listeners running until the
/// runtime stops; call [`RunningServer::shutdown`] to stop cleanly.
#[derive(Debug)]
pub struct RunningServer {
    users_addr: SocketAddr,
    services_addr: SocketAddr,
    cert_path: PathBuf,
    control: Control,
    stopping: CancellationToken,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Bound address of the users API (TLS).
    pub fn users_addr(&self) -> SocketAddr {
        self.users_addr
    }

    /// Bound address of the services API (plain HTTP, loopback).
    pub fn services_addr(&self) -> SocketAddr {
        self.services_addr
    }

    /// The certificate clients should trust (`cert_file`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Stops accepting connections, ends waiting change requests at once
    /// (503, the devices come back to the next server), lets other requests
    /// in flight finish (up to [`SHUTDOWN_GRACE`]), and waits for both
    /// listeners to stop.
    ///
    /// # Errors
    /// [`Error::Io`] if a listener failed while serving.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.stopping.cancel();
        self.control.graceful_shutdown(Some(SHUTDOWN_GRACE));
        let mut result = Ok(());
        for task in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(Error::io("serving")(e)),
                Err(_) => result = Err(Error::StorageUnavailable),
            }
        }
        tracing::info!("soledad-server stopped");
        result
    }
}
