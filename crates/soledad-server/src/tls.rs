//! TLS for the users API: load the configured certificate, or generate a
//! self-signed one once in the data directory and reuse it after.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crate::error::Error;

/// The certificate and the rustls configuration built from it.
pub(crate) struct TlsMaterial {
    /// PEM file clients can trust (`cert_file`).
    pub(crate) cert_path: PathBuf,
    /// Server configuration with ALPN `h2` and `http/1.1`.
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

fn cert_error(path: &Path, reason: impl ToString) -> Error {
    Error::Certificate {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Generates `cert.pem` / `key.pem` (SANs `localhost`, `127.0.0.1`) in `dir`
/// unless both exist already. Returns their paths.
fn ensure_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    fs::create_dir_all(dir).map_err(|e| cert_error(dir, e))?;
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| cert_error(&cert_path, e))?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
    write_private(&cert_path, generated.cert.pem().as_bytes())?;
    tracing::info!(cert_file = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

/// Writes a file atomically (temp + fsync + rename) with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| cert_error(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| cert_error(path, e))?;
    fs::rename(&tmp, path).map_err(|e| cert_error(path, e))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = fs::read(path).map_err(|e| cert_error(path, e))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(path, e))?;
    if certs.is_empty() {
        return Err(cert_error(path, "no certificate in file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = fs::read(path).map_err(|e| cert_error(path, e))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| cert_error(path, e))?
        .ok_or_else(|| cert_error(path, "no private key in file"))
}

/// Loads (or generates) the certificate and builds the rustls configuration.
pub(crate) fn load(config: &Config) -> Result<TlsMaterial, Error> {
    let (cert_path, key_path) = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => ensure_self_signed(&config.data_path.join("tls"))?,
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(&cert_path, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| cert_error(&cert_path, e))?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        cert_path,
        server_config: Arc::new(server_config),
    })
}
