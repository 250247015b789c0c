//! What every incoming box decides the same way: a message's state from its
//! flags and what the box remembers of it, and the paged listing built on it.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{IncomingError, IncomingQuery, Listing, MessageInfo, MessageState};
use crate::blobs::{BlobBackend, BlobError, BlobId, Flag, ListQuery, Namespace, Order, UserId};

/// Milliseconds since the Unix epoch, now: the clock of claim deadlines.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// What a box remembers of one message beyond its flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Remembered {
    /// When the current claim expires (Unix ms), if there is one.
    pub(crate) claim_until: Option<u64>,
    /// The version of the processor that failed on it.
    pub(crate) failed_version: Option<u64>,
}

/// The state of a message from its flags and what is remembered of it, at
/// `now` (Unix ms), with the failed version of a FAILED message.
pub(crate) fn message_state(
    flags: &[Flag],
    remembered: Remembered,
    now: u64,
) -> (MessageState, Option<u64>) {
    let claimed = remembered.claim_until.is_some_and(|until| until > now);
    let failed_version = remembered.failed_version;
    // A retry by a newer version whose claim expired is still failed at the
    // recorded version: an older processor must not take it.
    if flags.contains(&Flag::Failed) || (!claimed && failed_version.is_some()) {
        return (MessageState::Failed, Some(failed_version.unwrap_or(0)));
    }
    if flags.contains(&Flag::Processing) && claimed {
        return (MessageState::Processing, None);
    }
    (MessageState::Pending, None)
}

/// The listing of `user`'s incoming namespace for `query`, oldest first.
/// `remembered` is read once the blob ids are listed (so a record written
/// meanwhile is seen) and answers for each message id.
///
/// # Errors
/// The blob store's errors, or those of reading the records.
pub(crate) async fn list_messages<R, F>(
    blobs: &dyn BlobBackend,
    user: &UserId,
    query: &IncomingQuery,
    remembered: F,
) -> Result<Listing, IncomingError>
where
    R: Fn(&str) -> Remembered,
    F: Future<Output = Result<R, IncomingError>>,
{
    let ns = Namespace::incoming();
    let ids = blobs
        .list(
            user,
            &ListQuery {
                namespace: ns.clone(),
                filter_flag: None,
                order: Some(Order::DateAscending),
                deleted: false,
            },
        )
        .await?;
    let remembered = remembered.await?;
    let now = now_ms();
    let mut listing = Listing::default();
    let mut matching = Vec::new();
    for raw in ids {
        let Ok(id) = BlobId::parse(&raw) else {
            continue;
        };
        // A message may be finished between the listing and here.
        let flags = match blobs.get_flags(user, &ns, &id).await {
            Ok(flags) => flags,
            Err(BlobError::NotFound) => continue,
            Err(err) => return Err(err.into()),
        };
        let (state, failed_version) = message_state(&flags, remembered(id.as_str()), now);
        let wanted = match state {
            MessageState::Pending => {
                listing.pending = listing.pending.saturating_add(1);
                true
            }
            MessageState::Processing => query.include_processing,
            MessageState::Failed => query
                .version
                .is_some_and(|v| failed_version.unwrap_or(0) < v),
        };
        if !wanted {
            continue;
        }
        let size = match blobs.get(user, &ns, &id, None).await {
            Ok(read) => read.total_size,
            Err(BlobError::NotFound) => continue,
            Err(err) => return Err(err.into()),
        };
        if query.size_limit.is_some_and(|limit| size > limit) {
            listing.skipped_oversized.push(raw);
            continue;
        }
        matching.push(MessageInfo {
            id: raw,
            size,
            state,
            failed_version,
        });
    }
    listing.messages = match query.limit {
        None => matching,
        Some(limit) => matching
            .into_iter()
            .skip(query.page.saturating_mul(limit))
            .take(limit)
            .collect(),
    };
    Ok(listing)
}
