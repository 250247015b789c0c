//! What a listing asks for: namespace, flag filter, order, deleted blobs.

use super::flags::Flag;
use super::ids::Namespace;

/// Order of a listing by upload date (`order_by=date`/`+date` or `-date`).
///
/// Blobs uploaded at the same instant are ordered by id, ascending, in both
/// orders, so listings are deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    DateAscending,
    /// Newest first.
    DateDescending,
}

/// A listing or count request.
///
/// The default lists the live blobs of the `default` namespace, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only blobs of this namespace.
    pub namespace: Namespace,
    /// Only blobs carrying this flag (deleted blobs carry none).
    pub filter_flag: Option<Flag>,
    /// Order by upload date (for deleted blobs: by deletion date); `None`
    /// orders by id.
    pub order: Option<Order>,
    /// `true`: list the ids of deleted blobs (tombstones) instead of live ones.
    pub deleted: bool,
}
