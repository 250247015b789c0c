//! Small files beside a blob (flags, tombstone), written atomically: temp file
//! in `root/.tmp`, fsync, rename into place, fsync of the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use super::error::BlobError;
use super::flags::Flag;
use super::temp::{TempGuard, temp_path};

/// Longest flags file read, in bytes (four flags take well under 100).
const MAX_FLAGS_FILE_LEN: u64 = 4096;

/// Flushes a directory's entries (a rename or link in it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `target` atomically, with `mtime` as its modification
/// time if given, using a temporary file in `temp_dir` (same filesystem).
/// With `sync_parent`, also fsyncs `target`'s directory (otherwise the caller
/// does, after its other changes there).
pub(crate) fn write_atomic(
    temp_dir: &Path,
    target: &Path,
    bytes: &[u8],
    mtime: Option<SystemTime>,
    sync_parent: bool,
) -> io::Result<()> {
    let guard = TempGuard::new(temp_path(temp_dir)?);
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(guard.path())?;
    file.write_all(bytes)?;
    if let Some(mtime) = mtime {
        file.set_modified(mtime)?;
    }
    file.sync_all()?;
    drop(file);
    fs::rename(guard.path(), target)?;
    guard.persist();
    if sync_parent && let Some(dir) = target.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The flags file content for `flags` (a JSON list of names), duplicates dropped.
pub(crate) fn encode_flags(flags: &[Flag]) -> Vec<u8> {
    let mut unique: Vec<Flag> = Vec::with_capacity(flags.len());
    for flag in flags {
        if !unique.contains(flag) {
            unique.push(*flag);
        }
    }
    let names: Vec<&str> = unique.iter().map(|f| f.as_str()).collect();
    // A list of plain strings always serialises.
    serde_json::to_vec(&names).unwrap_or_else(|_| b"[]".to_vec())
}

/// Reads a flags file; a missing file means no flags.
///
/// # Errors
/// [`BlobError::Io`] if it cannot be read or is not a JSON list of flag names.
pub(crate) fn read_flags(path: &Path) -> Result<Vec<Flag>, BlobError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, MAX_FLAGS_FILE_LEN), &mut bytes)?;
    let names: Vec<String> = serde_json::from_slice(&bytes)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    names
        .iter()
        .map(|name| {
            Flag::parse(name).map_err(|_| {
                BlobError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unknown flag in flags file",
                ))
            })
        })
        .collect()
}
