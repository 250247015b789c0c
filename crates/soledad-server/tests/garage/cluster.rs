//! The Garage cluster the tests run against: the one the environment names
//! (`GARAGE_K2V_ENDPOINTS` …, as `scripts/garage-cluster start` prints), or
//! else a 3-node cluster started once for this test binary by
//! `scripts/garage-cluster` (installing Garage first if it is missing), which
//! stops itself when the test binary exits. [`requested`] says when these tests
//! run (`SOLEDAD_GARAGE_TESTS`). The e2e crate's Garage test
//! (`tests/e2e/tests/garage_servers.rs`) includes this same file.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use soledad_server::garage::{GarageConfig, SecretKey};

/// Whether the Garage tests run: `SOLEDAD_GARAGE_TESTS=1` requires them (CI
/// sets it; a cluster that cannot start then fails the tests), `=skip` skips
/// them, and unset runs them when Garage is installed (`scripts/setup
/// --garage`) or a cluster is named by `GARAGE_K2V_ENDPOINTS`, else skips with
/// a message saying how to run them.
pub fn requested() -> bool {
    let value = std::env::var("SOLEDAD_GARAGE_TESTS").unwrap_or_default();
    match value.as_str() {
        "1" | "yes" | "true" | "require" => true,
        "skip" | "0" | "no" | "false" => {
            eprintln!("SKIPPED: Garage tests not requested (SOLEDAD_GARAGE_TESTS={value})");
            false
        }
        _ if std::env::var("GARAGE_K2V_ENDPOINTS").is_ok() || garage_installed() => true,
        _ => {
            eprintln!(
                "SKIPPED: Garage is not installed; `scripts/setup --garage` installs it \
                 (or run `SOLEDAD_GARAGE_TESTS=1 scripts/test`, as CI does)"
            );
            false
        }
    }
}

/// Whether `scripts/garage-cluster` finds a Garage binary without building it.
fn garage_installed() -> bool {
    let path = match std::env::var_os("GARAGE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_default()
            .join("soledad/garage-2.5.0/bin/garage"),
    };
    path.is_file()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start_cluster() -> (Vec<(String, String)>, Option<PathBuf>) {
    let dir = std::env::temp_dir().join(format!("soledad-garage-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new(repo_root().join("scripts/garage-cluster"))
        .arg("start")
        .arg(&dir)
        .arg("--watch")
        .arg(std::process::id().to_string())
        .arg("--remove")
        .output()
        .expect("running scripts/garage-cluster");
    assert!(
        output.status.success(),
        "scripts/garage-cluster start failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let vars = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (vars, Some(dir))
}

/// What `scripts/garage-cluster start` printed (or the environment gave).
pub struct ClusterEnv {
    pub s3: Vec<String>,
    pub k2v: Vec<String>,
    pub bucket: String,
    pub region: String,
    pub key_id: String,
    pub secret_key_file: PathBuf,
    /// The cluster's directory when this binary started it (or
    /// `GARAGE_CLUSTER_DIR` names it): nodes can then be killed and restarted.
    #[allow(dead_code)] // read by tests/e2e/tests/garage_servers.rs, which includes this file
    pub dir: Option<PathBuf>,
}

/// The cluster (starting it on first use).
pub fn env() -> &'static ClusterEnv {
    static CLUSTER: OnceLock<ClusterEnv> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let (vars, dir): (Vec<(String, String)>, Option<PathBuf>) =
            if std::env::var("GARAGE_K2V_ENDPOINTS").is_ok() {
                (
                    std::env::vars().collect(),
                    std::env::var("GARAGE_CLUSTER_DIR").ok().map(PathBuf::from),
                )
            } else {
                start_cluster()
            };
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} is not set"))
        };
        ClusterEnv {
            s3: list(&get("GARAGE_S3_ENDPOINTS")),
            k2v: list(&get("GARAGE_K2V_ENDPOINTS")),
            bucket: get("GARAGE_BUCKET"),
            region: get("GARAGE_REGION"),
            key_id: get("GARAGE_KEY_ID"),
            secret_key_file: PathBuf::from(get("GARAGE_SECRET_KEY_FILE")),
            dir,
        }
    })
}

/// Runs `scripts/garage-cluster ARGS… DIR N` on this binary's cluster.
#[allow(dead_code)] // used by tests/e2e/tests/garage_servers.rs, which includes this file
pub fn node(action: &str, n: u32) {
    let dir = env().dir.as_ref().expect("a cluster directory");
    let status = Command::new(repo_root().join("scripts/garage-cluster"))
        .arg(action)
        .arg(dir)
        .arg(n.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "garage-cluster {action} {n}");
}

/// The cluster's configuration, with a key prefix of its own (every call).
pub fn config() -> GarageConfig {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let env = env();
    let base = GarageConfig::new(
        env.s3.clone(),
        env.k2v.clone(),
        env.bucket.clone(),
        env.region.clone(),
        env.key_id.clone(),
        SecretKey::from_file(&env.secret_key_file).unwrap(),
    );
    // Every case gets keys of its own in the shared bucket.
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).unwrap();
    base.with_key_prefix(format!(
        "t{}-{n}-{}-",
        std::process::id(),
        hex::encode(nonce)
    ))
}
