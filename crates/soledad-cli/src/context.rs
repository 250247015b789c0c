//! The settings of one invocation: flags and `SOLEDAD_*` variables first, then
//! the home's profile; and opening the client with them.

use std::path::{Path, PathBuf};

use soledad_client::{KdfParams, SecretString, Soledad, SoledadBuilder};

use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::passphrase::{self, Source};
use crate::profile::Profile;

/// File name of the passphrase-wrapped secrets inside the home directory.
pub(crate) const SECRETS_FILE: &str = "soledad.json";

/// **Test only.** When set to `1`, new secrets files and backups use scrypt
/// parameters that offer no protection against guessing, so test suites run
/// fast. Every device of an account must agree; never set it for real data.
pub(crate) const DANGER_FAST_KDF_VAR: &str = "SOLEDAD_DANGER_FAST_KDF";

/// Longest user id accepted (as the server's).
const MAX_UUID_LEN: usize = 128;

/// Resolved settings.
#[derive(Debug)]
pub(crate) struct Context {
    /// The home directory.
    pub(crate) home: PathBuf,
    /// The user's id, if known.
    pub(crate) uuid: Option<String>,
    /// The server URL, if any.
    pub(crate) server: Option<String>,
    /// The token, if any.
    pub(crate) token: Option<String>,
    /// The certificate to trust, if any.
    pub(crate) cert_file: Option<PathBuf>,
    /// `--passphrase-file`.
    pub(crate) passphrase_file: Option<PathBuf>,
    /// The scrypt parameters for new secrets.
    pub(crate) kdf: KdfParams,
}

impl Context {
    /// Reads the flags and the profile of the home directory.
    ///
    /// # Errors
    /// A usage error when no home can be found or the profile is unreadable.
    pub(crate) fn resolve(global: &GlobalArgs) -> Result<Context, CliError> {
        let home = match &global.home {
            Some(home) => home.clone(),
            None => default_home()?,
        };
        let profile = Profile::load(&home)?.unwrap_or_default();
        let or_profile = |flag: &Option<String>, saved: Option<String>| flag.clone().or(saved);
        let fast = std::env::var(DANGER_FAST_KDF_VAR).is_ok_and(|v| v == "1");
        Ok(Context {
            uuid: or_profile(&global.uuid, Some(profile.uuid).filter(|u| !u.is_empty())),
            server: or_profile(&global.server, profile.server),
            token: or_profile(&global.token, profile.token),
            cert_file: global.cert_file.clone().or(profile.cert_file),
            passphrase_file: global.passphrase_file.clone(),
            kdf: if fast {
                KdfParams::insecure_fast_for_tests()
            } else {
                KdfParams::interactive()
            },
            home,
        })
    }

    /// The user id, which must be known (flag, variable or profile).
    pub(crate) fn uuid(&self) -> Result<&str, CliError> {
        let uuid = self.uuid.as_deref().ok_or_else(|| {
            CliError::usage(format!(
                "no account in {}: run `soledad init --uuid UUID …` first (or pass --uuid)",
                self.home.display()
            ))
        })?;
        let valid = !uuid.is_empty()
            && uuid.len() <= MAX_UUID_LEN
            && uuid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(CliError::usage(
                "--uuid must be 1 to 128 characters of A-Z, a-z, 0-9, '-' and '_'",
            ));
        }
        Ok(uuid)
    }

    /// The secrets file of this home.
    pub(crate) fn secrets_path(&self) -> PathBuf {
        self.home.join(SECRETS_FILE)
    }

    /// The passphrase (file, `SOLEDAD_PASSPHRASE` or prompt).
    pub(crate) fn passphrase(&self, confirm: bool) -> Result<SecretString, CliError> {
        Source {
            file: self.passphrase_file.as_deref(),
            var: passphrase::PASSPHRASE_VAR,
            prompt: "Passphrase: ",
            confirm,
            what: "passphrase",
            file_option: "--passphrase-file",
        }
        .read()
    }

    /// A client builder for this home with `passphrase`.
    pub(crate) fn builder(&self, passphrase: SecretString) -> Result<SoledadBuilder, CliError> {
        let uuid = self.uuid()?;
        let mut builder = Soledad::builder(uuid, passphrase)
            .secrets_path(self.secrets_path())
            .local_db_path(self.home.join(format!("{uuid}.db")))
            .danger_kdf_params(self.kdf);
        match (&self.server, &self.token) {
            (Some(server), Some(token)) => {
                builder = builder.server_url(server).auth_token(token);
                if let Some(cert) = &self.cert_file {
                    builder = builder.cert_file(cert);
                }
            }
            (Some(_), None) => {
                return Err(CliError::usage(
                    "--server needs a token: pass --token or set SOLEDAD_TOKEN",
                ));
            }
            (None, _) => {}
        }
        Ok(builder)
    }

    /// Opens the account of an initialised home (refuses to create a new one:
    /// that is `soledad init`'s job).
    pub(crate) async fn open(&self) -> Result<Soledad, CliError> {
        self.require_initialised()?;
        let passphrase = self.passphrase(false)?;
        Ok(self.builder(passphrase)?.open().await?)
    }

    /// As [`open`](Self::open), with the blob store (`<uuid>_blobs.db`) too.
    pub(crate) async fn open_with_blobs(&self) -> Result<Soledad, CliError> {
        self.require_initialised()?;
        let passphrase = self.passphrase(false)?;
        Ok(self.builder(passphrase)?.with_blobs(true).open().await?)
    }

    /// Fails unless the home holds a secrets file.
    pub(crate) fn require_initialised(&self) -> Result<(), CliError> {
        if self.secrets_path().exists() {
            return Ok(());
        }
        Err(CliError::usage(format!(
            "no account in {}: run `soledad init` (or `soledad recover`) first",
            self.home.display()
        )))
    }

    /// The profile to save for this home: the uuid, server, certificate (as an
    /// absolute path) and, if `save_token`, the token.
    pub(crate) fn profile(&self, save_token: bool) -> Result<Profile, CliError> {
        Ok(Profile {
            uuid: self.uuid()?.to_owned(),
            server: self.server.clone(),
            cert_file: self
                .cert_file
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            token: self.token.clone().filter(|_| save_token),
        })
    }

    /// Creates the home directory (mode 0700 on Unix).
    pub(crate) fn create_home(&self) -> Result<(), CliError> {
        create_private_dir(&self.home)
            .map_err(|e| CliError::io(format!("creating {}", self.home.display()), e))
    }
}

fn default_home() -> Result<PathBuf, CliError> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(data).join("soledad"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home).join(".local/share/soledad"));
    }
    Err(CliError::usage(
        "no home directory: pass --home DIR or set SOLEDAD_HOME",
    ))
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}
