//! Finding (and when needed building) the `soledad-server` binary of this build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Environment variable naming a `soledad-server` binary to use instead.
pub const BINARY_ENV: &str = "SOLEDAD_SERVER_BIN";

/// The workspace root (this crate sits in `crates/soledad-testkit`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Crates whose sources make up the server binary.
const SERVER_CRATES: &[&str] = &[
    "soledad-server",
    "soledad-store",
    "soledad-protocol",
    "soledad-crypto",
];

/// The `soledad-server` binary the tests run.
///
/// In order: `SOLEDAD_SERVER_BIN` when set; else `soledad-server` in the
/// profile directory of the running test or bench (`target/debug` for
/// `cargo test`, `target/release` for `cargo bench`), built there first with
/// `cargo build -p soledad-server --bin soledad-server` (same profile) when it
/// is missing or older than any source of the server and the crates it is made
/// of, so a test never runs a stale server. Resolved once per process.
///
/// # Panics
/// When the binary cannot be found or built.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(locate).clone()
}

fn locate() -> PathBuf {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the path of the running test");
    // <target>/<profile>/deps/<test>: the binary sits in <target>/<profile>.
    let mut profile_dir = exe.parent().expect("test binary directory").to_owned();
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let binary = profile_dir.join(format!("soledad-server{}", std::env::consts::EXE_SUFFIX));
    if is_stale(&binary) {
        build(&profile_dir);
    }
    assert!(
        binary.is_file(),
        "soledad-server not found at {} (build it with `cargo build -p soledad-server`, \
         or set {BINARY_ENV})",
        binary.display()
    );
    binary
}

/// Whether `binary` is missing or older than a source file of the server.
fn is_stale(binary: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    let root = workspace_root();
    let mut sources = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for name in SERVER_CRATES {
        sources.push(root.join("crates").join(name).join("Cargo.toml"));
        sources.push(root.join("crates").join(name).join("src"));
    }
    sources.iter().any(|path| newest(path) > built)
}

/// The newest modification time of `path` or any file under it.
fn newest(path: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![path.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = path.metadata() else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(modified);
        }
    }
    newest
}

/// `cargo build -p soledad-server --bin soledad-server` into `profile_dir`.
fn build(profile_dir: &Path) {
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => "dev",
    };
    let target_dir = profile_dir.parent().expect("the target directory");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "soledad-server",
            "--bin",
            "soledad-server",
        ])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("running cargo to build soledad-server");
    assert!(status.success(), "building soledad-server failed");
}
