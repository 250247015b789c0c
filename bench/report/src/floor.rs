//! The raw floor: what the same bytes cost with nothing but the cipher and a plain
//! SQLite write (no SQLCipher, no TLS, no HTTP, no sync logic), in this process.

use std::io::{BufWriter, Read as _, Write as _};
use std::path::Path;
use std::time::Instant;

use crate::workload::{doc_id, filler};

/// Seal `count` documents of `size` bytes as the uploader does, write the sealed
/// bytes into a plain SQLite table once per side (server, receiving device; WAL,
/// 64 KiB pages as the stores use; one transaction each), open them as the
/// receiver does. Milliseconds.
pub(crate) fn docs(count: usize, size: usize, dir: &Path) -> anyhow::Result<f64> {
    let bodies: Vec<String> = (0..count).map(|i| filler(i, size)).collect();
    let keys = soledad_crypto::SyncKeys::new(&soledad_crypto::StorageSecret::generate()?);
    // The tables exist before the clock starts, as the real stores do, and the
    // connections stay open until it stops: closing the last one checkpoints the
    // WAL, which the real stores do not pay per sync either.
    let mut open = Vec::new();
    for side in ["server", "device"] {
        let path = dir.join(format!("floor-{side}.db"));
        remove_db(&path);
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA page_size=65536; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE t (id TEXT PRIMARY KEY, v BLOB);",
        )?;
        open.push((conn, path));
    }
    let start = Instant::now();
    let mut sealed = Vec::with_capacity(count);
    for (i, body) in bodies.iter().enumerate() {
        let id = doc_id(i);
        sealed.push((
            keys.hidden_id(&id),
            keys.seal_for_server(&id, "r:1", Some(body))?,
        ));
    }
    for (conn, _) in &open {
        conn.execute_batch("BEGIN")?;
        {
            let mut insert = conn.prepare("INSERT INTO t VALUES (?1, ?2)")?;
            for (id, bytes) in &sealed {
                insert.execute(rusqlite::params![id, bytes])?;
            }
        }
        conn.execute_batch("COMMIT")?;
    }
    for (hidden, bytes) in &sealed {
        keys.open_from_server(hidden, "r:1", bytes)?;
    }
    let elapsed = start.elapsed();
    for (conn, path) in open {
        drop(conn);
        remove_db(&path);
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}

/// A blob of `size` bytes through the AES-256-GCM blob stream into a file (fsync),
/// then read back and decrypted. Milliseconds.
pub(crate) fn blob(size: u64, dir: &Path) -> anyhow::Result<f64> {
    let key = soledad_crypto::StorageSecret::generate()?.blob_key();
    let path = dir.join("floor-blob.bin");
    let start = Instant::now();
    {
        let mut file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        soledad_crypto::encrypt_blob(
            &key,
            "floor",
            size,
            std::io::repeat(0x5a).take(size),
            &mut file,
        )?;
        file.flush()?;
        file.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?
            .sync_all()?;
    }
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    soledad_crypto::decrypt_blob(&key, "floor", file, std::io::sink())?;
    let elapsed = start.elapsed();
    std::fs::remove_file(&path)?;
    Ok(elapsed.as_secs_f64() * 1000.0)
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}
