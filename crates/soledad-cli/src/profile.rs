//! The profile `soledad init` saves in the home directory (`profile.json`), so
//! later commands need no flags: the uuid, the server URL, the certificate to
//! trust and, unless `init --no-save-token`, the token.
//!
//! The token is saved because every command that talks to the server needs it
//! and it is only a bearer credential for ciphertext: whoever holds it can read
//! and overwrite the account's encrypted data on the server, not decrypt it. The
//! file is written with mode 0600. The passphrase is never saved.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// File name of the profile inside the home directory.
pub(crate) const PROFILE_FILE: &str = "profile.json";

/// Largest profile file read (it holds four short fields).
const MAX_PROFILE_BYTES: u64 = 64 << 10;

/// The saved settings of a home directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// The user's id.
    pub(crate) uuid: String,
    /// The server's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    /// The certificate to trust for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cert_file: Option<PathBuf>,
    /// The user's token for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
}

impl Profile {
    /// Loads `<home>/profile.json`; `None` when there is none.
    pub(crate) fn load(home: &Path) -> Result<Option<Profile>, CliError> {
        let path = home.join(PROFILE_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(CliError::io(format!("reading {}", path.display()), err)),
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_PROFILE_BYTES), &mut text)
            .map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::usage(format!(
                "{} is not a valid profile ({e}); fix or remove it",
                path.display()
            ))
        })
    }

    /// Saves the profile atomically with mode 0600.
    pub(crate) fn save(&self, home: &Path) -> Result<(), CliError> {
        let path = home.join(PROFILE_FILE);
        let context = || format!("writing {}", path.display());
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| CliError::io(context(), std::io::Error::other(e)))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".profile")
            .tempfile_in(home)
            .map_err(|e| CliError::io(context(), e))?;
        // tempfile creates the file with mode 0600 on Unix.
        tmp.write_all(text.as_bytes())
            .and_then(|()| tmp.write_all(b"\n"))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| CliError::io(context(), e))?;
        tmp.persist(&path)
            .map_err(|e| CliError::io(context(), e.error))?;
        Ok(())
    }
}
