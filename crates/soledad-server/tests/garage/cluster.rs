//! The Garage cluster the tests run against: the one the environment names
//! (`GARAGE_K2V_ENDPOINTS` …, as `scripts/garage-cluster start` prints), or
//! else a 3-node cluster started once for this test binary by
//! `scripts/garage-cluster` (installing Garage first if it is missing), which
//! stops itself when the test binary exits. `SOLEDAD_GARAGE_TESTS=skip` skips
//! every Garage test with a message instead.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use soledad_server::garage::{GarageConfig, SecretKey};

/// Whether the Garage tests are asked for (default: yes).
pub fn requested() -> bool {
    match std::env::var("SOLEDAD_GARAGE_TESTS") {
        Ok(value) if matches!(value.as_str(), "skip" | "0" | "no" | "false") => {
            eprintln!(
                "SKIPPED: Garage tests not requested (SOLEDAD_GARAGE_TESTS={value}); \
                 unset it to run them against a 3-node cluster"
            );
            false
        }
        _ => true,
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start_cluster() -> Vec<(String, String)> {
    let dir = std::env::temp_dir().join(format!("soledad-garage-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new(repo_root().join("scripts/garage-cluster"))
        .arg("start")
        .arg(&dir)
        .arg("--watch")
        .arg(std::process::id().to_string())
        .output()
        .expect("running scripts/garage-cluster");
    assert!(
        output.status.success(),
        "scripts/garage-cluster start failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The cluster's configuration (starting it on first use).
pub fn config() -> GarageConfig {
    static CLUSTER: OnceLock<GarageConfig> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = CLUSTER.get_or_init(|| {
        if let Some(config) = GarageConfig::from_env().unwrap() {
            return config;
        }
        let env = start_cluster();
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} missing from scripts/garage-cluster's output"))
        };
        let list = |name: &str| get(name).split(',').map(str::to_owned).collect::<Vec<_>>();
        GarageConfig::new(
            list("GARAGE_S3_ENDPOINTS"),
            list("GARAGE_K2V_ENDPOINTS"),
            get("GARAGE_BUCKET"),
            get("GARAGE_REGION"),
            get("GARAGE_KEY_ID"),
            SecretKey::from_file(&PathBuf::from(get("GARAGE_SECRET_KEY_FILE"))).unwrap(),
        )
    });
    // Every case gets keys of its own in the shared bucket.
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).unwrap();
    base.clone().with_key_prefix(format!(
        "t{}-{n}-{}/",
        std::process::id(),
        hex::encode(nonce)
    ))
}
