//! Where the binary reads the outside world: configuration file, environment,
//! and the logging subscriber.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use soledad_server::{Config, ConfigLayers};

/// The seed's default configuration file.
const DEFAULT_CONFIG_FILE: &str = "/etc/soledad/soledad-server.conf";

/// Installs the tracing subscriber: stderr, or stdout with
/// `SOLEDAD_LOG_TO_STDOUT`; level from `RUST_LOG` (default info when serving,
/// warn for admin commands).
pub(crate) fn init_logging(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let to_stdout = std::env::var("SOLEDAD_LOG_TO_STDOUT")
        .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(to_stdout_is_terminal(to_stdout));
    if to_stdout {
        builder.with_writer(std::io::stdout).init();
    } else {
        builder.with_writer(std::io::stderr).init();
    }
}

/// Default data directory for an unprivileged user.
fn default_data_path() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("soledad-server");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/soledad-server");
    }
    PathBuf::from("soledad-server-data")
}

/// Defaults, then the INI file, then environment overrides, then
/// `--data-path`; validated ([`Config::load`]).
pub(crate) fn config(file: Option<&Path>, data_path: Option<PathBuf>) -> anyhow::Result<Config> {
    let file = match file {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let ini = file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading configuration file {}", path.display()))
        })
        .transpose()?;
    let layers = ConfigLayers {
        default_data_path: default_data_path(),
        ini,
        // Variables that are not Unicode cannot be options: skip them.
        env: std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect(),
        data_path,
    };
    Config::load(layers).with_context(|| match &file {
        Some(path) => format!(
            "in the configuration (file {}, environment, flags)",
            path.display()
        ),
        None => "in the configuration (environment, flags)".to_owned(),
    })
}

/// Colours only on a terminal, so piped logs stay plain text.
fn to_stdout_is_terminal(to_stdout: bool) -> bool {
    use std::io::IsTerminal as _;
    if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    }
}
