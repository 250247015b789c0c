//! Walking a namespace directory: listings, counts, and measuring a user's
//! stored bytes for the quota.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::BlobError;
use super::ids::{BlobId, Namespace, UserId};
use super::layout::{FLAGS_SUFFIX, TOMBSTONE_SUFFIX, user_dir};
use super::query::{ListQuery, Order};
use super::quota::UsageSource;
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

/// Measures the bytes of blob content a user stores, across namespaces.
#[derive(Debug)]
pub(crate) struct FsUsage {
    root: PathBuf,
}

impl FsUsage {
    /// Measures under `root`.
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

impl UsageSource for FsUsage {
    fn measure(&self, user: &UserId) -> io::Result<u64> {
        let mut total = 0u64;
        for ns_dir in subdirs(&user_dir(&self.root, user))? {
            let is_namespace = ns_dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| Namespace::parse(n).is_ok());
            if !is_namespace {
                continue;
            }
            for entry in walk(&ns_dir)?.live {
                total = total.saturating_add(entry.len);
            }
        }
        Ok(total)
    }
}
