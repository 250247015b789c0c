//! Walking a namespace directory: listings, counts, and measuring a user's
//! stored bytes for the quota.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::claims::Claims;
use super::error::BlobError;
use super::ids::{BlobId, Namespace, UserId};
use super::layout::{FLAGS_SUFFIX, TOMBSTONE_SUFFIX, blob_paths, namespace_dir, user_dir};
use super::query::{ListQuery, Order};
use super::quota::{ENTRY_OVERHEAD_BYTES, UsageSource};
use super::sidecar::read_flags;

/// A content file or tombstone found in a namespace.
struct Entry {
    id: BlobId,
    dir: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// What a walk of one namespace found.
#[derive(Default)]
struct Found {
    live: Vec<Entry>,
    tombstones: Vec<Entry>,
    /// Flags sidecar files (with or without content).
    flags_files: u64,
}

/// Subdirectories of `dir`; none if `dir` does not exist.
fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Content files and tombstones of the namespace at `ns_dir` (the three levels
/// of prefix directories, then files). Anything else is ignored.
fn walk(ns_dir: &Path) -> io::Result<Found> {
    let mut found = Found::default();
    for p1 in subdirs(ns_dir)? {
        for p3 in subdirs(&p1)? {
            for leaf in subdirs(&p3)? {
                scan_leaf(&leaf, &mut found)?;
            }
        }
    }
    Ok(found)
}

fn scan_leaf(leaf: &Path, found: &mut Found) -> io::Result<()> {
    let entries = match fs::read_dir(leaf) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(FLAGS_SUFFIX) {
            match entry.file_type() {
                Ok(kind) if kind.is_file() => found.flags_files += 1,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            continue;
        }
        let (stem, tombstone) = match name.strip_suffix(TOMBSTONE_SUFFIX) {
            Some(stem) => (stem, true),
            None => (name, false),
        };
        let Ok(id) = BlobId::parse(stem) else {
            continue;
        };
        // The file may vanish (concurrent delete) between listing and stat.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        if !meta.is_file() {
            continue;
        }
        let item = Entry {
            id,
            dir: leaf.to_path_buf(),
            len: meta.len(),
            modified: meta.modified()?,
        };
        if tombstone {
            found.tombstones.push(item);
        } else {
            found.live.push(item);
        }
    }
    Ok(())
}

/// Ids of the namespace's blobs matching `query`, in the asked order.
///
/// Deleted blobs are those with a tombstone and no content (a blob stored
/// again after a delete is live). Ties in date are broken by id, ascending.
pub(crate) fn list(
    root: &Path,
    user: &UserId,
    query: &ListQuery,
) -> Result<Vec<String>, BlobError> {
    let ns_dir = user_dir(root, user).join(query.namespace.as_str());
    let found = walk(&ns_dir)?;
    let mut entries = if query.deleted {
        let live: HashSet<&BlobId> = found.live.iter().map(|e| &e.id).collect();
        let mut deleted = Vec::new();
        for entry in found.tombstones {
            if !live.contains(&entry.id) {
                deleted.push(entry);
            }
        }
        deleted
    } else {
        found.live
    };
    if let Some(flag) = query.filter_flag {
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let flags_path = entry
                .dir
                .join(format!("{}{FLAGS_SUFFIX}", entry.id.as_str()));
            if read_flags(&flags_path)?.contains(&flag) {
                kept.push(entry);
            }
        }
        entries = kept;
    }
    match query.order {
        None => entries.sort_by(|a, b| a.id.cmp(&b.id)),
        Some(Order::DateAscending) => {
            entries.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.id.cmp(&b.id)));
        }
        Some(Order::DateDescending) => {
            entries.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.id.cmp(&b.id)));
        }
    }
    Ok(entries
        .into_iter()
        .map(|e| e.id.as_str().to_owned())
        .collect())
}

/// What an entry costs against the quota (see [`ENTRY_OVERHEAD_BYTES`]).
pub(crate) fn content_charge(len: u64) -> u64 {
    len.saturating_add(ENTRY_OVERHEAD_BYTES)
}

/// The namespaces a user has stored something in.
fn namespaces(root: &Path, user: &UserId) -> io::Result<Vec<Namespace>> {
    let mut found = Vec::new();
    for ns_dir in subdirs(&user_dir(root, user))? {
        if let Some(ns) = ns_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Namespace::parse(n).ok())
        {
            found.push(ns);
        }
    }
    Ok(found)
}

/// Removes the tombstones of `ns` older than `retention`, each under its
/// blob's lock; returns the quota they were charged.
pub(crate) fn purge_tombstones(
    root: &Path,
    claims: &Claims,
    user: &UserId,
    ns: &Namespace,
    retention: Duration,
) -> io::Result<u64> {
    let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
        return Ok(0);
    };
    let mut freed = 0u64;
    for entry in walk(&namespace_dir(root, user, ns))?.tombstones {
        if entry.modified > cutoff {
            continue;
        }
        let paths = blob_paths(root, user, ns, &entry.id);
        let _lock = claims.lock(&paths.key);
        // A delete may have written a fresh tombstone since the walk.
        let still_expired = match fs::symlink_metadata(&paths.tombstone) {
            Ok(meta) => meta.is_file() && meta.modified()? <= cutoff,
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => return Err(err),
        };
        if !still_expired {
            continue;
        }
        match fs::remove_file(&paths.tombstone) {
            Ok(()) => freed = freed.saturating_add(ENTRY_OVERHEAD_BYTES),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(freed)
}

/// Measures what a user's blobs cost against the quota, across namespaces,
/// exactly as writes charge it: each content file its length plus
/// [`ENTRY_OVERHEAD_BYTES`], each flags file and tombstone
/// [`ENTRY_OVERHEAD_BYTES`]. Expired tombstones are purged first.
#[derive(Debug)]
pub(crate) struct FsUsage {
    root: PathBuf,
    claims: Arc<Claims>,
    retention: Duration,
}

impl FsUsage {
    /// Measures under `root`, purging tombstones older than `retention`.
    pub(crate) fn new(root: PathBuf, claims: Arc<Claims>, retention: Duration) -> Self {
        Self {
            root,
            claims,
            retention,
        }
    }
}

impl UsageSource for FsUsage {
    fn measure(&self, user: &UserId) -> io::Result<u64> {
        let mut total = 0u64;
        for ns in namespaces(&self.root, user)? {
            // Not charged yet: nothing to credit.
            purge_tombstones(&self.root, &self.claims, user, &ns, self.retention)?;
            let found = walk(&namespace_dir(&self.root, user, &ns))?;
            for entry in &found.live {
                total = total.saturating_add(content_charge(entry.len));
            }
            let files = u64::try_from(found.tombstones.len())
                .unwrap_or(u64::MAX)
                .saturating_add(found.flags_files);
            total = total.saturating_add(files.saturating_mul(ENTRY_OVERHEAD_BYTES));
        }
        Ok(total)
    }
}
