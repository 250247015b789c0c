//! Where things live on disk (the seed's layout).
//!
//! ```text
//! root/<user>/<namespace>/<id[..1]>/<id[..3]>/<id[..6]>/<id>          content
//! root/<user>/<namespace>/<id[..1]>/<id[..3]>/<id[..6]>/<id>.flags    JSON list of flags
//! root/<user>/<namespace>/<id[..1]>/<id[..3]>/<id[..6]>/<id>.deleted  tombstone
//! root/.tmp/                                                          uploads in flight
//! ```
//! Ids shorter than a prefix use the whole id. Paths are only built from
//! validated [`UserId`], [`Namespace`] and [`BlobId`] values, whose characters
//! are `[A-Za-z0-9_-]`: no component can be `..`, hold a separator or start with
//! a dot, so nothing escapes its directory and nothing collides with `.tmp` or
//! the `.flags`/`.deleted` sidecars.

use std::path::{Path, PathBuf};

use super::ids::{BlobId, Namespace, UserId};

/// Name of the directory (under the root) holding temporary files.
pub(crate) const TEMP_DIR: &str = ".tmp";
/// Extension of the flags sidecar.
pub(crate) const FLAGS_SUFFIX: &str = ".flags";
/// Extension of a deleted blob's tombstone.
pub(crate) const TOMBSTONE_SUFFIX: &str = ".deleted";

/// The files of one blob.
#[derive(Clone, Debug)]
pub(crate) struct BlobPaths {
    /// Directory holding the three files below.
    pub(crate) dir: PathBuf,
    /// The content.
    pub(crate) content: PathBuf,
    /// The flags sidecar.
    pub(crate) flags: PathBuf,
    /// The tombstone left by a delete.
    pub(crate) tombstone: PathBuf,
    /// `user/namespace/id`: identifies the blob among all users.
    pub(crate) key: String,
}

/// `root/<user>`.
pub(crate) fn user_dir(root: &Path, user: &UserId) -> PathBuf {
    root.join(user.as_str())
}

/// `root/<user>/<namespace>`.
pub(crate) fn namespace_dir(root: &Path, user: &UserId, ns: &Namespace) -> PathBuf {
    user_dir(root, user).join(ns.as_str())
}

fn prefix(id: &str, len: usize) -> &str {
    id.get(..len).unwrap_or(id)
}

/// The files of blob `id` of `user` in `ns`.
pub(crate) fn blob_paths(root: &Path, user: &UserId, ns: &Namespace, id: &BlobId) -> BlobPaths {
    let name = id.as_str();
    let dir = namespace_dir(root, user, ns)
        .join(prefix(name, 1))
        .join(prefix(name, 3))
        .join(prefix(name, 6));
    BlobPaths {
        content: dir.join(name),
        flags: dir.join(format!("{name}{FLAGS_SUFFIX}")),
        tombstone: dir.join(format!("{name}{TOMBSTONE_SUFFIX}")),
        dir,
        key: format!("{user}/{ns}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_seed_example() {
        let user = UserId::parse("some-user-id").unwrap();
        let id = BlobId::parse("some-blob-id").unwrap();
        let p = blob_paths(Path::new("/r"), &user, &Namespace::default(), &id);
        assert_eq!(
            p.content,
            Path::new("/r/some-user-id/default/s/som/some-b/some-blob-id")
        );
        assert_eq!(
            p.flags,
            Path::new("/r/some-user-id/default/s/som/some-b/some-blob-id.flags")
        );
        let short = BlobId::parse("ab").unwrap();
        let p = blob_paths(Path::new("/r"), &user, &Namespace::incoming(), &short);
        assert_eq!(p.content, Path::new("/r/some-user-id/MX/a/ab/ab/ab"));
    }
}
