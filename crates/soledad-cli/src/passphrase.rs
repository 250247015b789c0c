//! Passphrases and recovery codes: from a file, an environment variable, or a
//! prompt on the terminal without echo — never from a plain flag (flags are
//! visible to other users in the process list).

use std::io::Read as _;
use std::path::Path;

use soledad_client::SecretString;

use crate::error::CliError;

/// Environment variable holding the passphrase.
pub(crate) const PASSPHRASE_VAR: &str = "SOLEDAD_PASSPHRASE";
/// Environment variable holding the new passphrase (`passphrase change`, `recover`).
pub(crate) const NEW_PASSPHRASE_VAR: &str = "SOLEDAD_NEW_PASSPHRASE";
/// Environment variable holding a recovery code (`recover`).
pub(crate) const RECOVERY_CODE_VAR: &str = "SOLEDAD_RECOVERY_CODE";

/// Largest secret file read.
const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// Where a secret comes from, in order: a file, an environment variable, a prompt.
pub(crate) struct Source<'a> {
    /// The file option, if given.
    pub(crate) file: Option<&'a Path>,
    /// The environment variable.
    pub(crate) var: &'static str,
    /// The prompt shown on the terminal.
    pub(crate) prompt: &'static str,
    /// Whether a prompt asks twice (a new secret must not have a typo).
    pub(crate) confirm: bool,
    /// What it is, for messages ("passphrase").
    pub(crate) what: &'static str,
    /// The option that names the file, for messages.
    pub(crate) file_option: &'static str,
}

impl Source<'_> {
    /// Reads the secret.
    pub(crate) fn read(&self) -> Result<SecretString, CliError> {
        let text = if let Some(path) = self.file {
            read_first_line(path)?
        } else if let Ok(value) = std::env::var(self.var) {
            value
        } else {
            self.prompt()?
        };
        if text.is_empty() {
            return Err(CliError::usage(format!("the {} is empty", self.what)));
        }
        Ok(SecretString::from(text))
    }

    fn prompt(&self) -> Result<String, CliError> {
        let no_terminal = |e: std::io::Error| {
            CliError::usage(format!(
                "no {what} given: set {var}, use {opt} FILE, or run in a terminal ({e})",
                what = self.what,
                var = self.var,
                opt = self.file_option,
            ))
        };
        let first = rpassword::prompt_password(self.prompt).map_err(no_terminal)?;
        if self.confirm {
            let again = rpassword::prompt_password("Repeat it: ").map_err(no_terminal)?;
            if again != first {
                return Err(CliError::usage(format!("the two {}s differ", self.what)));
            }
        }
        Ok(first)
    }
}

/// The first line of a file, without its line ending.
fn read_first_line(path: &Path) -> Result<String, CliError> {
    let context = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).map_err(|e| CliError::io(context(), e))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| CliError::io(context(), e))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
