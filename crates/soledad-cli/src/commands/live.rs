//! `soledad sync --live`: keeps this device in step with the server and prints
//! what happens, one line per event, until Ctrl-C (or `--for-secs`).
//!
//! With `--json`, every line is one JSON object (`{"event": …}`: JSON Lines,
//! the one command whose stdout is a stream), the last one
//! `{"event": "stopped", "events": n}`.

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use soledad_client::{LiveEvent, LiveOptions};
use tokio::sync::broadcast::error::RecvError;

use super::sync::{SyncArgs, report_json};
use crate::context::Context;
use crate::error::CliError;
use crate::output::{Output, WARN};

/// Runs `soledad sync --live`.
pub(crate) async fn run(ctx: &Context, args: &SyncArgs, json: bool) -> Result<Output, CliError> {
    let soledad = ctx.open().await?;
    let live = soledad.start_live_sync(LiveOptions::default()).await?;
    let mut events = live.subscribe();
    let until = async {
        match args.for_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            // A failure to listen for Ctrl-C leaves only a kill to stop us.
            None => {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    tokio::pin!(until);
    let mut count = 0u64;
    let printed = loop {
        tokio::select! {
            () = &mut until => break Ok(()),
            event = events.recv() => match event {
                Ok(event) => {
                    if let Some((value, text)) = describe(&event) {
                        count += 1;
                        if let Err(e) = print(json, &value, &text) {
                            break Err(CliError::io("writing to stdout", e));
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break Ok(()),
            },
        }
    };
    live.stop().await;
    soledad.close().await?;
    printed?;
    Ok(Output::new(
        json!({ "event": "stopped", "events": count }),
        format!("stopped after {count} event(s)"),
    ))
}

fn print(json: bool, value: &Value, text: &str) -> std::io::Result<()> {
    let mut out = anstream::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, value)?;
        out.write_all(b"\n")?;
    } else {
        writeln!(out, "{text}")?;
    }
    out.flush()
}

fn ids(doc_ids: &[soledad_client::DocId]) -> String {
    let ids: Vec<&str> = doc_ids.iter().map(|id| id.as_str()).collect();
    ids.join(", ")
}

/// An event as a JSON object and a line of text; `None` for kinds this
/// version does not know.
fn describe(event: &LiveEvent) -> Option<(Value, String)> {
    Some(match event {
        LiveEvent::Connected => (json!({ "event": "connected" }), "connected".to_owned()),
        LiveEvent::Disconnected { error } => (
            json!({ "event": "disconnected", "message": error.to_string() }),
            format!("disconnected: {error} (retrying)"),
        ),
        LiveEvent::Synced { report } => {
            let mut value = report_json(report);
            if let Some(object) = value.as_object_mut() {
                object.insert("event".to_owned(), json!("synced"));
            }
            (
                value,
                format!(
                    "synced: sent {}, received {}, server generation {}",
                    report.sent, report.received, report.target_generation
                ),
            )
        }
        LiveEvent::DocumentsChanged { count, doc_ids } => (
            json!({ "event": "documents_changed", "count": count, "doc_ids": doc_ids }),
            format!("documents changed: {count} ({})", ids(doc_ids)),
        ),
        LiveEvent::Conflicts { doc_ids } => (
            json!({ "event": "conflicts", "doc_ids": doc_ids }),
            format!(
                "{WARN}conflicts{WARN:#}: {} (see `soledad doc conflicts ID`)",
                ids(doc_ids)
            ),
        ),
        LiveEvent::BlobsChanged => (
            json!({ "event": "blobs_changed" }),
            "blobs may have changed (`soledad blob sync`)".to_owned(),
        ),
        LiveEvent::IncomingWaiting => (
            json!({ "event": "incoming_waiting" }),
            "incoming box may hold messages (`soledad incoming process`)".to_owned(),
        ),
        LiveEvent::SyncFailed { error } => (
            json!({ "event": "sync_failed", "message": error.to_string() }),
            format!("sync failed: {error} (retrying)"),
        ),
        _ => return None,
    })
}
