//! `GET /changes/{uuid}?since=…&source=…&wait_secs=…`: the long poll of live
//! sync (`docs/protocol.md`, "Change notifications").
//!
//! Answers `{"changed": [kinds…], "marker": …}` as soon as the user's
//! documents, blobs or incoming box changed after `since`, or with `changed`
//! empty once the wait (the smaller of `wait_secs` and the server's
//! `live_wait_secs`) ran out. [`Access::Owner`]: the [`Owner`] extractor
//! parses the decoded `{uuid}` and requires it to be the caller (403
//! otherwise), so another user's token never waits on, nor learns anything
//! about, this user. Each user has at most `live_waits_per_user` waits in
//! flight (429 beyond), the server `max_live_waits` (503 beyond). A shutdown
//! ends every wait at once with 503.
//!
//! [`Access::Owner`]: crate::auth::access::Access::Owner

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use soledad_protocol::{ChangesResponse, is_valid_marker};
use soledad_store::vectorclock::is_valid_replica_uid;

use super::AppState;
use super::extract::QueryArgs;
use crate::auth::access::Owner;
use crate::error::Error;

/// The query of a change request.
#[derive(Deserialize)]
pub(crate) struct ChangesArgs {
    since: Option<String>,
    source: Option<String>,
    wait_secs: Option<u64>,
}

/// `GET /changes/{uuid}`.
pub(crate) async fn wait(
    State(state): State<AppState>,
    Owner(user): Owner,
    QueryArgs(args): QueryArgs<ChangesArgs>,
) -> Result<Json<ChangesResponse>, Error> {
    if args.since.as_deref().is_some_and(|m| !is_valid_marker(m)) {
        return Err(Error::InvalidRequest { what: "since" });
    }
    if args
        .source
        .as_deref()
        .is_some_and(|s| !is_valid_replica_uid(s))
    {
        return Err(Error::InvalidReplicaUid);
    }
    let timeout = args
        .wait_secs
        .map_or(state.live_wait, Duration::from_secs)
        .min(state.live_wait);
    // Held until the answer is sent or the client goes away.
    let _slot = state.live_waits.try_take(&user)?;
    let waiting = state.notifier.wait(
        &user,
        args.since.as_deref(),
        args.source.as_deref(),
        timeout,
    );
    tokio::select! {
        answer = waiting => answer.map(Json),
        () = state.stopping.cancelled() => Err(Error::StorageUnavailable),
    }
}
