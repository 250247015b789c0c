//! Opening a database: the key (always the first statement), page size,
//! journal settings, then the schema. A plaintext file is only ever made by
//! the explicitly named `open_unencrypted`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::database::Database;
use crate::error::{Result, StoreError};
use crate::payload::Payload;
use crate::schema;

/// Page size used for new and existing files (bytes). Chosen by measurement
/// (`cargo bench -p soledad-store --bench create_docs`): 64 KiB pages write 1000×10 KB
/// documents several times faster than 4 KiB pages, with and without SQLCipher.
/// It must be the same on every open of a file (SQLCipher decrypts page by page).
pub const PAGE_SIZE_BYTES: u32 = 65536;

/// Page cache of an encrypted database (KiB; SQLite's default is 2,000).
/// A page missing from the cache costs a read and a decryption of a whole
/// 64 KiB page: with the default, the id index of a store of 100,000
/// documents (~4 MB of random keys) no longer fits and applying a sync batch
/// decrypts a page per document. Measured applying 100,000 × 10 KB documents
/// with random ids (1,024 per transaction), CPU per document at the end:
/// 86 µs with 2,000 KiB, 71 µs with 4 MiB, 68 µs with 8 MiB. Bounded whatever
/// the store's size; plaintext (server) databases keep the default, their
/// misses are a copy from the OS.
pub const ENCRYPTED_CACHE_KIB: u32 = 4096;

/// Length of the raw SQLCipher key.
pub const KEY_BYTES: usize = 32;

/// How long a connection waits for another one holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for opening a database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    replica_uid: Option<String>,
    document_size_limit: Option<usize>,
    page_size: u32,
    durable_commits: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

enum Target<'a> {
    File(&'a Path),
    Memory,
}

impl OpenOptions {
    /// Default options: random replica uid for a new file, no size limit.
    pub fn new() -> Self {
        Self {
            replica_uid: None,
            document_size_limit: None,
            page_size: PAGE_SIZE_BYTES,
            durable_commits: false,
        }
    }

    /// The replica uid to give a new database. Opening an existing database
    /// with a different uid fails with [`StoreError::InvalidReplicaUid`].
    pub fn replica_uid(mut self, replica_uid: impl Into<String>) -> Self {
        self.replica_uid = Some(replica_uid.into());
        self
    }

    /// Largest document (JSON text or payload bytes) that local writes accept.
    pub fn document_size_limit(mut self, bytes: Option<usize>) -> Self {
        self.document_size_limit = bytes;
        self
    }

    /// Whether every commit is on stable storage before it returns
    /// (`PRAGMA synchronous = FULL`: with WAL, an fsync of the log per commit).
    /// The default (`false`, `synchronous = NORMAL`) never corrupts the file but
    /// may lose the last commits on power loss; a server that acknowledges
    /// writes to its clients wants `true`, or switches it on for the last
    /// transaction before an acknowledgement with
    /// [`Database::set_durable_commits`] (WAL commits reach the disk in order,
    /// so that transaction's fsync makes every earlier one durable too).
    pub fn durable_commits(mut self, durable: bool) -> Self {
        self.durable_commits = durable;
        self
    }

    /// Overrides the page size (for benchmarks). It must be identical on every
    /// open of the same file, or an encrypted file will not open.
    #[doc(hidden)]
    pub fn danger_page_size_bytes(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }

    /// Opens (or creates) a SQLCipher database with a raw 32-byte key.
    ///
    /// # Errors
    /// [`StoreError::WrongKeyOrNotADatabase`] for a wrong key or a file that is
    /// not an encrypted database; [`StoreError::WrongPayloadKind`],
    /// [`StoreError::UnsupportedSchemaVersion`], [`StoreError::Storage`].
    pub fn open_encrypted<P: Payload>(
        &self,
        path: impl AsRef<Path>,
        key: &[u8; KEY_BYTES],
    ) -> Result<Database<P>> {
        self.open(Target::File(path.as_ref()), Some(key))
    }

    /// Opens (or creates) a plaintext database (the server's embedded backend,
    /// whose payloads are already ciphertext).
    ///
    /// # Errors
    /// As [`OpenOptions::open_encrypted`].
    pub fn open_unencrypted<P: Payload>(&self, path: impl AsRef<Path>) -> Result<Database<P>> {
        self.open(Target::File(path.as_ref()), None)
    }

    /// Opens a fresh plaintext in-memory database (tests).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    pub fn open_in_memory<P: Payload>(&self) -> Result<Database<P>> {
        self.open(Target::Memory, None)
    }

    fn open<P: Payload>(
        &self,
        target: Target<'_>,
        key: Option<&[u8; KEY_BYTES]>,
    ) -> Result<Database<P>> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn = match target {
            Target::File(path) => Connection::open_with_flags(path, flags)?,
            Target::Memory => Connection::open_in_memory()?,
        };
        configure(&conn, key, self.page_size, self.durable_commits).map_err(map_not_a_database)?;
        let replica_uid = schema::ensure(
            &mut conn,
            <P as crate::payload::sealed::Sealed>::KIND,
            self.replica_uid.as_deref(),
        )
        .map_err(map_not_a_database)?;
        let mut db = Database::from_parts(conn, replica_uid, self.document_size_limit);
        db.durable_commits = self.durable_commits;
        Ok(db)
    }
}

/// Maps SQLite's "file is not a database" (wrong key, plaintext/ciphertext
/// mismatch, garbage file) to the typed error.
fn map_not_a_database(err: StoreError) -> StoreError {
    match err {
        StoreError::Storage(rusqlite::Error::SqliteFailure(e, _))
            if e.code == ErrorCode::NotADatabase =>
        {
            StoreError::WrongKeyOrNotADatabase
        }
        other => other,
    }
}

fn configure(
    conn: &Connection,
    key: Option<&[u8; KEY_BYTES]>,
    page_size: u32,
    durable_commits: bool,
) -> Result<()> {
    if let Some(key) = key {
        set_key(conn, key)?;
        conn.execute_batch(&format!("PRAGMA cipher_page_size = {page_size};"))?;
    }
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    conn.execute_batch(&format!("PRAGMA page_size = {page_size};"))?;
    // Fail fast: the first read decrypts page 1.
    let _: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch(synchronous_pragma(durable_commits))?;
    // Statement journals and temporary tables hold plaintext pages: never on disk.
    conn.execute_batch("PRAGMA temp_store = MEMORY;")?;
    if key.is_some() {
        conn.execute_batch(&format!("PRAGMA cache_size = -{ENCRYPTED_CACHE_KIB};"))?;
    }
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

/// The statement choosing durable (`FULL`) or ordered (`NORMAL`) commits.
pub(crate) fn synchronous_pragma(durable_commits: bool) -> &'static str {
    if durable_commits {
        "PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA synchronous = NORMAL;"
    }
}

/// `PRAGMA key = "x'<64 hex>'"`; the statement text is wiped afterwards.
fn set_key(conn: &Connection, key: &[u8; KEY_BYTES]) -> Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut sql: Vec<u8> = Vec::with_capacity(20 + 2 * KEY_BYTES);
    sql.extend_from_slice(b"PRAGMA key = \"x'");
    for byte in key {
        sql.push(HEX[usize::from(byte >> 4)]);
        sql.push(HEX[usize::from(byte & 0x0f)]);
    }
    sql.extend_from_slice(b"'\";");
    let result = match std::str::from_utf8(&sql) {
        Ok(text) => conn.execute_batch(text).map_err(StoreError::from),
        Err(_) => Err(StoreError::WrongKeyOrNotADatabase),
    };
    sql.fill(0);
    std::hint::black_box(&sql);
    result
}
