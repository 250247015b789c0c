//! [`ServerProcess`]: the binary serving a temporary data directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

/// Longest the harness waits for the server to serve after a (re)start.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The `Authorization` header value of the token scheme: `Token
/// base64(id:token)` (a user's uuid, or a service's name).
pub fn authorization(id: &str, token: &str) -> String {
    format!("Token {}", STANDARD.encode(format!("{id}:{token}")))
}

/// What to start: INI options, users and service tokens made before serving.
#[derive(Debug, Default)]
#[must_use]
pub struct ServerBuilder {
    options: BTreeMap<String, String>,
    users: Vec<String>,
    services: Vec<String>,
    env: Vec<(OsString, OsString)>,
    binary: Option<PathBuf>,
}

impl ServerBuilder {
    /// Sets the INI option `key` of the `[soledad-server]` section (e.g.
    /// `quota_bytes`, `processing_threshold_secs`); it may replace the
    /// harness's own `data_path`, `users_address` or `services_address`.
    pub fn option(mut self, key: &str, value: impl ToString) -> Self {
        self.options.insert(key.to_owned(), value.to_string());
        self
    }

    /// Registers user `uuid` (`soledad-server user add`) before serving; its
    /// token is [`ServerProcess::token`].
    pub fn user(mut self, uuid: &str) -> Self {
        self.users.push(uuid.to_owned());
        self
    }

    /// Adds a token for service `name` (`soledad-server service-token add`)
    /// before serving; it is [`ServerProcess::service_token`].
    pub fn service(mut self, name: &str) -> Self {
        self.services.push(name.to_owned());
        self
    }

    /// Sets an environment variable of every command the harness runs.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs this binary instead of [`server_binary`](crate::server_binary)'s
    /// (the server's own tests pass `env!("CARGO_BIN_EXE_soledad-server")`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Writes the configuration, registers the users and services, starts the
    /// binary and waits until both APIs accept connections and the TLS
    /// certificate exists.
    ///
    /// # Panics
    /// When anything of this fails (the server's output is in the message).
    pub fn start(self) -> ServerProcess {
        let dir = tempfile::Builder::new()
            .prefix("soledad-server-")
            .tempdir()
            .expect("a temporary directory");
        let own_ports = !self.options.contains_key("users_address")
            && !self.options.contains_key("services_address");
        let mut options = BTreeMap::from([(
            "data_path".to_owned(),
            dir.path().join("data").display().to_string(),
        )]);
        if own_ports {
            options.extend(free_addresses());
        }
        options.extend(self.options);
        let users = parse_addr(&options, "users_address");
        let services = parse_addr(&options, "services_address");
        let data = PathBuf::from(&options["data_path"]);
        let config = dir.path().join("soledad-server.conf");
        write_config(&config, &options);
        let mut server = ServerProcess {
            binary: self.binary.unwrap_or_else(crate::server_binary),
            log: dir.path().join("soledad-server.log"),
            dir,
            config,
            data,
            users,
            services,
            env: self.env,
            child: Arc::new(Mutex::new(None)),
            tokens: BTreeMap::new(),
            service_tokens: BTreeMap::new(),
        };
        for uuid in self.users {
            let token = server.add_user(&uuid);
            server.tokens.insert(uuid, token);
        }
        for name in self.services {
            let token = server.admin(&["service-token", "add", &name]);
            server.service_tokens.insert(name, token);
        }
        // A free port may be taken by someone else before the server binds it:
        // then choose others (only when the harness chose them).
        let mut attempts = 0;
        loop {
            attempts += 1;
            match server.serve() {
                Ok(()) => return server,
                Err(_) if own_ports && attempts < 3 => {
                    server.note("the server exited at start; trying other ports");
                    options.extend(free_addresses());
                    server.users = parse_addr(&options, "users_address");
                    server.services = parse_addr(&options, "services_address");
                    write_config(&server.config, &options);
                }
                Err(log) => panic!("soledad-server exited at start:\n{log}"),
            }
        }
    }
}

/// `users_address` and `services_address` on free loopback ports.
fn free_addresses() -> [(String, String); 2] {
    let addr = || SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    [
        ("users_address".to_owned(), addr()),
        ("services_address".to_owned(), addr()),
    ]
}

fn write_config(path: &Path, options: &BTreeMap<String, String>) {
    let mut ini = String::from("[soledad-server]\n");
    for (key, value) in options {
        ini.push_str(&format!("{key} = {value}\n"));
    }
    std::fs::write(path, ini).expect("writing the server configuration");
}

fn parse_addr(options: &BTreeMap<String, String>, key: &str) -> SocketAddr {
    options[key]
        .parse()
        .unwrap_or_else(|e| panic!("{key} must be an address the tests can reach: {e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The real `soledad-server` binary serving a temporary data directory on
/// loopback, with the configuration file, users and service tokens the
/// [`ServerBuilder`] asked for. Killed (SIGKILL) and its directory removed on
/// drop.
///
/// Layout under [`dir`](Self::dir): `data/` (the data directory; the
/// self-signed certificate is `data/tls/cert.pem`), `soledad-server.conf`,
/// `soledad-server.log` (stdout and stderr of every run, shown when a start
/// fails). Tests may put client homes under `dir` too.
#[derive(Debug)]
pub struct ServerProcess {
    dir: TempDir,
    binary: PathBuf,
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
    users: SocketAddr,
    services: SocketAddr,
    env: Vec<(OsString, OsString)>,
    child: Arc<Mutex<Option<Child>>>,
    tokens: BTreeMap<String, String>,
    service_tokens: BTreeMap<String, String>,
}

impl ServerProcess {
    /// A builder: default configuration, no users.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The temporary directory holding everything of this server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's data directory (`data_path`).
    pub fn data_path(&self) -> &Path {
        &self.data
    }

    /// The configuration file the binary runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The certificate of the users API (generated by the server).
    pub fn cert(&self) -> PathBuf {
        self.data.join("tls").join("cert.pem")
    }

    /// The users API (TLS), `127.0.0.1:<port>`.
    pub fn users_addr(&self) -> SocketAddr {
        self.users
    }

    /// The local services API (plain HTTP), `127.0.0.1:<port>`.
    pub fn services_addr(&self) -> SocketAddr {
        self.services
    }

    /// `https://127.0.0.1:<port>` of the users API.
    pub fn url(&self) -> String {
        format!("https://{}", self.users)
    }

    /// `http://127.0.0.1:<port>` of the services API.
    pub fn services_url(&self) -> String {
        format!("http://{}", self.services)
    }

    /// The token of a user registered by [`ServerBuilder::user`].
    ///
    /// # Panics
    /// When `uuid` was not registered that way.
    pub fn token(&self, uuid: &str) -> &str {
        self.tokens
            .get(uuid)
            .unwrap_or_else(|| panic!("user {uuid} was not registered by the builder"))
    }

    /// The `Authorization` header of a user registered by the builder.
    pub fn user_authorization(&self, uuid: &str) -> String {
        authorization(uuid, self.token(uuid))
    }

    /// The token of a service added by [`ServerBuilder::service`].
    ///
    /// # Panics
    /// When `name` was not added that way.
    pub fn service_token(&self, name: &str) -> &str {
        self.service_tokens
            .get(name)
            .unwrap_or_else(|| panic!("service {name} was not added by the builder"))
    }

    /// The `Authorization` header of a service added by the builder.
    pub fn service_authorization(&self, name: &str) -> String {
        authorization(name, self.service_token(name))
    }

    /// Registers user `uuid` (`soledad-server user add`, which works while the
    /// server runs) and returns the new token.
    pub fn add_user(&self, uuid: &str) -> String {
        self.admin(&["user", "add", uuid])
    }

    /// Runs `soledad-server --config <file> <args>`; returns its trimmed
    /// stdout.
    ///
    /// # Panics
    /// When the command fails (its stderr is in the message).
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "soledad-server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `soledad-server --config <file> <args>` and returns its output,
    /// whatever its status.
    ///
    /// # Panics
    /// When the binary cannot be run.
    pub fn command(&self, args: &[&str]) -> Output {
        self.base_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.binary.display()))
    }

    /// Delivers `message` to `uuid`'s incoming box as message `id` the way an
    /// MX does: piped into `soledad-server deliver <uuid> <id>`, which seals it
    /// to the user's published key and sends it through the services API with
    /// the `incoming` service token (add it with
    /// [`ServerBuilder::service`]`("incoming")`). Returns the command's output.
    ///
    /// # Panics
    /// When the binary cannot be run.
    pub fn deliver(&self, uuid: &str, id: &str, message: &[u8]) -> Output {
        let mut child = self
            .base_command()
            .args(["deliver", uuid, id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.binary.display()));
        if let Some(mut stdin) = child.stdin.take() {
            // A refusal may close stdin early; the output tells why.
            let _ = stdin.write_all(message);
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for soledad-server deliver: {e}"))
    }

    fn base_command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env_remove("SOLEDAD_SERVER_CONFIG_FILE")
            .env_remove("SOLEDAD_SERVER_DATA_PATH")
            .env_remove("HTTPS_PORT")
            .env_remove("LOCAL_SERVICES_PORT")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(&self.config);
        command
    }

    /// Whether the process runs (it was not killed and has not exited).
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                *child = None;
                false
            }
            None => false,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_ref().map(Child::id)
    }

    /// SIGKILLs the process (no graceful stop, nothing flushed) and reaps it;
    /// nothing happens when it does not run.
    pub fn kill(&self) {
        self.killer().kill();
    }

    /// A handle that can kill this process from elsewhere (e.g. a proxy task
    /// that cuts a transfer at a chosen byte).
    pub fn killer(&self) -> Killer {
        Killer {
            child: self.child.clone(),
        }
    }

    /// Kills the process if it runs, then serves again on the same ports and
    /// data directory and waits until it is ready.
    ///
    /// # Panics
    /// When it does not serve again (the server's log is in the message).
    pub fn restart(&self) {
        self.kill();
        if let Err(log) = self.serve() {
            panic!("soledad-server exited at restart:\n{log}");
        }
    }

    /// Starts the process (it must not run) and waits until it serves; the
    /// server's log when it exits first.
    fn serve(&self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the server log");
        let err = log.try_clone().expect("cloning the server log");
        let child = self
            .base_command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        {
            let mut slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
            assert!(slot.is_none(), "the server is already running");
            *slot = Some(child);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = TcpStream::connect(self.users).is_ok()
                && TcpStream::connect(self.services).is_ok()
                && self.cert().is_file();
            if ready {
                return Ok(());
            }
            if !self.is_running() {
                return Err(self.log_text());
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "soledad-server did not serve within {PATIENCE:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the server wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Appends a line to the server log (a marker for the reader of a failure).
    pub fn note(&self, line: &str) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(log, "--- test: {line}");
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills a [`ServerProcess`] from another task or thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Killer {
    child: Arc<Mutex<Option<Child>>>,
}

impl Killer {
    /// SIGKILLs the process and reaps it; false when it was not running.
    pub fn kill(&self) -> bool {
        let taken = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
            None => false,
        }
    }
}
