//! Service tokens: the seed's tokens file, one `servicename:token` per line.
//!
//! The file is read once when the server starts (restart to pick up new
//! tokens). Tokens are kept in memory only as SHA-256 hashes and compared in
//! constant time.

use std::io::Write as _;
use std::path::Path;

use super::tokens::{IssuedToken, hash_token, hashes_match};
use crate::error::Error;

/// Longest service name accepted.
const MAX_SERVICE_NAME: usize = 64;

/// The services allowed on the services API.
#[derive(Default)]
pub struct ServiceTokens {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ServiceTokens")
            .field("services", &names)
            .finish()
    }
}

/// True for a service name usable in the tokens file and the auth header.
pub(crate) fn is_valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl ServiceTokens {
    /// Parses the tokens file's text. Blank lines and lines starting with `#`
    /// are skipped.
    ///
    /// # Errors
    /// [`Error::Config`] for `services_tokens_file` naming the bad line.
    pub fn parse(text: &str) -> Result<ServiceTokens, Error> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                Error::config(
                    "services_tokens_file",
                    format!("line {} is not `servicename:token`", number + 1),
                )
            };
            let (name, token) = line.split_once(':').ok_or_else(bad)?;
            if !is_valid_service_name(name) || token.is_empty() {
                return Err(bad());
            }
            entries.push((name.to_owned(), hash_token(token)));
        }
        Ok(ServiceTokens { entries })
    }

    /// Loads the tokens file; a missing file means no service may connect.
    ///
    /// # Errors
    /// [`Error::Io`] when the file exists but cannot be read, or see [`Self::parse`].
    pub fn load(path: &Path) -> Result<ServiceTokens, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => ServiceTokens::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "no services tokens file: services API refuses everyone");
                Ok(ServiceTokens::default())
            }
            Err(e) => Err(Error::io("reading the services tokens file")(e)),
        }
    }

    /// True when `token` is a token of service `name`.
    pub fn verify(&self, name: &str, token: &str) -> bool {
        let presented = hash_token(token);
        // Check every entry so the time taken does not depend on which matched.
        self.entries.iter().fold(false, |found, (n, hash)| {
            found | (n == name && hashes_match(hash, &presented))
        })
    }

    /// Number of configured service tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no service token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Generates a token for service `name` and appends `name:token` to the tokens
/// file (created with mode 0600 if missing). Returns the token.
///
/// # Errors
/// [`Error::Config`] for a bad name, [`Error::Io`] when the file cannot be written.
pub fn append_service_token(path: &Path, name: &str) -> Result<IssuedToken, Error> {
    if !is_valid_service_name(name) {
        return Err(Error::config(
            "service name",
            "use 1-64 of A-Z a-z 0-9 . _ -",
        ));
    }
    let token = IssuedToken::generate()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("creating the tokens file directory"))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(Error::io("opening the services tokens file"))?;
    // Start on a fresh line even if the file was edited by hand without one.
    let needs_newline = std::fs::read(path)
        .map(|bytes| bytes.last().is_some_and(|b| *b != b'\n'))
        .unwrap_or(false);
    let line = format!(
        "{}{name}:{}\n",
        if needs_newline { "\n" } else { "" },
        token.expose()
    );
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing the services tokens file"))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seed_format_and_verifies() {
        let tokens =
            ServiceTokens::parse("# comment\nincoming:Zm9yYSB0ZW1lciEK\n\nmx:a:b\n").unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens.verify("incoming", "Zm9yYSB0ZW1lciEK"));
        assert!(tokens.verify("mx", "a:b"));
        assert!(!tokens.verify("incoming", "Zm9yYSB0ZW1lciEL"));
        assert!(!tokens.verify("mx", "Zm9yYSB0ZW1lciEK"));
    }

    #[test]
    fn bad_line_names_option_and_line() {
        let err = ServiceTokens::parse("ok:x\nnotoken\n").unwrap_err();
        assert!(matches!(&err, Error::Config { option, reason }
            if option == "services_tokens_file" && reason.contains("line 2")));
    }
}
