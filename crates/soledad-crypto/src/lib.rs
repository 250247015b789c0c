//! Soledad cryptography: the storage secret and its sub-keys, the passphrase-wrapped
//! secrets file, server-side backups and recovery codes, the document envelope and
//! the blob stream format.
//!
//! This crate does no networking and no database work: it turns secrets, ids and
//! bytes into other bytes, and reads/writes blob streams through `std::io` or (with
//! the default `async` feature) tokio readers. The server depends on it with
//! `default-features = false` for [`Preamble`] only; it never holds a key.
//! Formats, labels and parameters are specified in `docs/crypto.md`.
//!
//! ```
//! use secrecy::SecretString;
//! use soledad_crypto::{KdfParams, SecretsFile, StorageSecret};
//!
//! # fn main() -> Result<(), soledad_crypto::Error> {
//! let secret = StorageSecret::generate()?;
//! let passphrase = SecretString::from("correct horse battery staple");
//! // Tests use cheap parameters; production uses `KdfParams::interactive()`.
//! let file = SecretsFile::new(&secret, &passphrase, KdfParams::insecure_fast_for_tests())?;
//! let reopened = SecretsFile::from_json(&file.to_json())?.unlock(&passphrase)?;
//! assert_eq!(reopened, secret);
//!
//! let doc_key = secret.doc_key();
//! let envelope = doc_key.seal("D-1", "replica:1", r#"{"hello": "world"}"#)?;
//! assert_eq!(doc_key.open("D-1", "replica:1", &envelope)?, r#"{"hello": "world"}"#);
//! assert!(doc_key.open("D-1", "replica:2", &envelope).is_err());
//!
//! let blob_key = secret.blob_key();
//! let mut stored = Vec::new();
//! soledad_crypto::encrypt_blob(&blob_key, "b1", 5, &b"hello"[..], &mut stored)?;
//! let mut plain = Vec::new();
//! soledad_crypto::decrypt_blob(&blob_key, "b1", &stored[..], &mut plain)?;
//! assert_eq!(plain, b"hello");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod backup;
mod envelope;
mod error;
mod incoming;
mod kdf;
mod keys;
mod padding;
mod preamble;
mod primitives;
mod pump;
mod recovery;
mod secrets_file;
mod server_doc;
mod stream;
#[cfg(feature = "async")]
mod stream_async;
mod stream_io;

pub use backup::{BACKUP_ID_SALT_PREFIX, Backup, backup_id, make_backup, restore_from_backup};
#[doc(hidden)]
pub use envelope::EnvelopeParts;
pub use envelope::{ENVELOPE_MAGIC, ENVELOPE_VERSION, MAX_DOC_CONTENT_BYTES, MAX_ENVELOPE_BYTES};
pub use error::{Error, Result};
pub use incoming::{
    IncomingIdentity, MAX_INCOMING_EPOCH, SealWriter, open_incoming, seal_incoming,
};
pub use kdf::{KdfParams, MAX_LOG_N, MAX_MEMORY_BYTES, MAX_P, MAX_R, MAX_WORK};
pub use keys::{
    BlobKey, DocKey, HKDF_SALT, IdBoxKey, IdKey, LABEL_BLOB, LABEL_DOC, LABEL_ID, LABEL_ID_BOX,
    LABEL_INCOMING, LABEL_LOCAL_DB, LocalDbKey, STORAGE_SECRET_LEN, StorageSecret,
};
pub use padding::padme;
pub use preamble::{
    BLOB_SALT_LEN, MAX_BLOB_ID_LEN, MAX_PREAMBLE_LEN, Method, PREAMBLE_MAGIC, PREAMBLE_VERSION,
    Preamble, Scheme,
};
#[doc(hidden)]
pub use recovery::parse_blob as parse_recovery_blob;
pub use recovery::{RECOVERY_BLOB_VERSION, RECOVERY_CODE_BYTES, RecoveryCode};
pub use secrets_file::{KDF_SALT_LEN, MAX_SECRETS_FILE_BYTES, SECRETS_FILE_VERSION, SecretsFile};
#[doc(hidden)]
pub use server_doc::ServerDocParts;
pub use server_doc::{ID_BOX_BUCKET, SERVER_DOC_MAGIC, SERVER_DOC_VERSION, SyncKeys};
pub use stream::{
    BlobDecryptor, BlobEncryptor, MAX_BLOB_SIZE, SEALED_SEGMENT_SIZE, SEGMENT_SIZE, SegmentSpan,
};
#[cfg(feature = "async")]
pub use stream_async::{
    AsyncDecryptReader, AsyncEncryptReader, decrypt_blob_async, encrypt_blob_async,
};
pub use stream_io::{DecryptReader, EncryptReader, decrypt_blob, encrypt_blob};
