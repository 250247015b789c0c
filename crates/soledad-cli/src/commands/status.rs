//! `soledad status`: what this device holds and when it last synced.

use serde_json::json;
use soledad_client::{ATTACHMENTS_NAMESPACE, DEFAULT_NAMESPACE, Soledad, SyncStatus};

use super::sync::LastSync;
use crate::context::Context;
use crate::error::CliError;
use crate::output::{BOLD, Output, WARN};

/// Runs `soledad status`.
pub(crate) async fn run(ctx: &Context) -> Result<Output, CliError> {
    // Open the blob store only if this home already has one: `status` creates nothing.
    let uuid = ctx.uuid()?;
    let has_blobs = ctx.home.join(format!("{uuid}_blobs.db")).exists();
    let soledad = if has_blobs {
        ctx.open_with_blobs().await?
    } else {
        ctx.open().await?
    };
    let (generation, docs) = soledad.get_all_docs(true).await?;
    let blobs = pending_blobs(&soledad).await?;
    let indexes = soledad.list_indexes().await?;
    let live = docs.iter().filter(|d| !d.is_tombstone()).count();
    let deleted = docs.len() - live;
    let live_ids: Vec<&str> = docs
        .iter()
        .filter(|d| !d.is_tombstone())
        .map(|d| d.doc_id.as_str())
        .collect();
    let conflicted: Vec<String> = soledad
        .get_docs(&live_ids, true, false)
        .await?
        .into_iter()
        .filter(|d| d.has_conflicts)
        .map(|d| d.doc_id.into_string())
        .collect();
    let replica = soledad.replica_uid().to_owned();
    let uuid = soledad.uuid().to_owned();
    soledad.close().await?;
    let last = LastSync::load(&ctx.home);

    let mut text = format!(
        "account     {BOLD}{uuid}{BOLD:#}\nhome        {}\nreplica     {replica}\nserver      {}\n\
         generation  {generation}\ndocuments   {live} ({deleted} deleted)\nindexes     {}\n",
        ctx.home.display(),
        ctx.server.as_deref().unwrap_or("(none)"),
        indexes.len(),
    );
    text.push_str(&format!(
        "blobs       {} to upload, {} to download, {} failed\n",
        blobs.to_upload, blobs.to_download, blobs.failed
    ));
    if !conflicted.is_empty() {
        text.push_str(&format!(
            "conflicts   {WARN}{}{WARN:#}\n",
            conflicted.join(", ")
        ));
    }
    text.push_str(&match &last {
        Some(last) => format!(
            "last sync   {}, server generation {}\n",
            ago(last.at_unix),
            last.target_generation
        ),
        None => "last sync   never (from this home)\n".to_owned(),
    });
    let json = json!({
        "uuid": uuid,
        "home": ctx.home,
        "replica_uid": replica,
        "server": ctx.server,
        "generation": generation,
        "documents": live,
        "deleted": deleted,
        "conflicted": conflicted,
        "indexes": indexes.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        "pending_blobs": {
            "to_upload": blobs.to_upload,
            "to_download": blobs.to_download,
            "failed": blobs.failed,
        },
        "last_sync": last,
    });
    Ok(Output::new(json, text))
}

/// Blobs of the default and attachments namespaces not in sync yet.
#[derive(Default)]
struct PendingBlobs {
    to_upload: usize,
    to_download: usize,
    failed: usize,
}

async fn pending_blobs(soledad: &Soledad) -> Result<PendingBlobs, CliError> {
    let mut pending = PendingBlobs::default();
    let Some(blobs) = soledad.blobmanager() else {
        return Ok(pending);
    };
    for namespace in [DEFAULT_NAMESPACE, ATTACHMENTS_NAMESPACE] {
        let count = |status| blobs.local_list_status(status, namespace);
        pending.to_upload += count(SyncStatus::PendingUpload).await?.len();
        pending.to_download += count(SyncStatus::PendingDownload).await?.len();
        pending.failed += count(SyncStatus::FailedUpload).await?.len()
            + count(SyncStatus::FailedDownload).await?.len();
    }
    Ok(pending)
}

/// "42 s ago", "3 min ago", "5 h ago", "2 days ago".
fn ago(at_unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(at_unix);
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}
