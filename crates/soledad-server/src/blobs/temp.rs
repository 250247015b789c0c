//! Temporary files under `root/.tmp`: random names, removal on drop, and
//! cleanup of what a crash left behind.

use std::io;
use std::path::{Path, PathBuf};

/// A fresh, unpredictable file name in `dir` (`<32 hex>.part`).
pub(crate) fn temp_path(dir: &Path) -> io::Result<PathBuf> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(dir.join(format!("{}.part", hex::encode(random))))
}

/// Removes the file at its path when dropped, unless [`persist`](Self::persist)ed.
///
/// Removing on drop is what makes a failed or cancelled upload leave nothing.
#[derive(Debug)]
pub(crate) struct TempGuard {
    path: Option<PathBuf>,
}

impl TempGuard {
    /// Guards `path` (the file need not exist yet).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    /// The guarded path.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Stops guarding: the file stays where it is.
    pub(crate) fn persist(mut self) {
        self.path = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // One unlink; if it fails, the next start's cleanup removes the file.
            if let Err(err) = std::fs::remove_file(&path)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(error = %err, "could not remove a temporary blob file");
            }
        }
    }
}

/// Creates `dir` if needed and removes everything in it (leftovers of a
/// previous run that stopped mid-upload). Returns how many entries went.
pub(crate) fn clean_dir(dir: &Path) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let result = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(removed)
}
