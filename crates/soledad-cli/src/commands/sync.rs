//! `soledad sync`: one sync with the server; a progress bar on a terminal; the
//! time and outcome recorded in the home (`last-sync.json`) for `soledad status`.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use soledad_client::{Soledad, SyncReport};

use crate::context::Context;
use crate::error::CliError;
use crate::output::{Output, WARN};

/// Options of `soledad sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Stay running: sync whenever another device changed something (told by
    /// the server) or this device wrote, and print each event until Ctrl-C.
    #[arg(long)]
    pub(crate) live: bool,
    /// With --live: stop after this many seconds.
    #[arg(long, requires = "live", value_name = "SECS")]
    pub(crate) for_secs: Option<u64>,
}

/// Examples of `soledad sync`.
pub(crate) const EXAMPLES: &str = "Examples:
  soledad sync && soledad doc list
  soledad sync --live                  # until Ctrl-C
  soledad --json sync --live --for-secs 60 | jq -c 'select(.event == \"documents_changed\")'";

/// File of the last successful sync inside the home directory.
const LAST_SYNC_FILE: &str = "last-sync.json";
/// How often the progress bar reads the client's counters.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// What `soledad status` shows about the last successful sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LastSync {
    /// When it finished (seconds since the Unix epoch).
    pub(crate) at_unix: u64,
    /// The server generation it reached.
    pub(crate) target_generation: u64,
    /// Documents sent.
    pub(crate) sent: u64,
    /// Documents received.
    pub(crate) received: u64,
    /// Conflicts it made.
    pub(crate) conflicts: u64,
}

impl LastSync {
    /// Reads the record of `home` (none when missing or unreadable).
    pub(crate) fn load(home: &Path) -> Option<LastSync> {
        let text = std::fs::read_to_string(home.join(LAST_SYNC_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Runs `soledad sync`.
pub(crate) async fn run(ctx: &Context) -> Result<Output, CliError> {
    let soledad = ctx.open().await?;
    let result = sync_with_progress(&soledad).await;
    soledad.close().await?;
    let report = result?;
    record(ctx, &report);
    let mut text = format!(
        "synced: sent {}, received {}, server generation {}",
        report.sent, report.received, report.target_generation
    );
    if report.conflicts > 0 {
        text.push_str(&format!(
            "\n{WARN}{} conflict(s){WARN:#}: see `soledad doc list` and `soledad doc conflicts ID`",
            report.conflicts
        ));
    }
    Ok(Output::new(report_json(&report), text))
}

/// The report as JSON.
pub(crate) fn report_json(report: &SyncReport) -> serde_json::Value {
    json!({
        "sent": report.sent,
        "received": report.received,
        "conflicts": report.conflicts,
        "refused": report.refused,
        "superseded": report.superseded,
        "merged": report.merged,
        "converged": report.converged,
        "target_generation": report.target_generation,
    })
}

/// Syncs; while it runs, a bar on stderr (only when stderr is a terminal) shows
/// documents received of those announced, and documents sent.
async fn sync_with_progress(soledad: &Soledad) -> Result<SyncReport, soledad_client::Error> {
    if !std::io::stderr().is_terminal() {
        return soledad.sync().await;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    // Sending has no known total: a spinner with a count. Once the server
    // announces what it will send, a bar of documents received.
    let sending = ProgressStyle::with_template("{spinner} syncing: {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let receiving = ProgressStyle::with_template(
        "{spinner} syncing [{bar:30}] {pos}/{len} received, {msg} ({eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(sending);
    let mut announced = false;
    let sync = soledad.sync();
    tokio::pin!(sync);
    let mut tick = tokio::time::interval(PROGRESS_TICK);
    let result = loop {
        tokio::select! {
            result = &mut sync => break result,
            _ = tick.tick() => {
                let stats = soledad.sync_stats();
                if stats.to_receive > 0 && !announced {
                    announced = true;
                    bar.set_style(receiving.clone());
                }
                bar.set_length(stats.to_receive);
                bar.set_position(stats.received);
                bar.set_message(format!("{} sent", stats.sent));
                bar.tick();
            }
        }
    };
    bar.finish_and_clear();
    result
}

/// Records the sync for `status`; failing to write it does not fail the sync.
fn record(ctx: &Context, report: &SyncReport) {
    let at_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LastSync {
        at_unix,
        target_generation: report.target_generation,
        sent: report.sent,
        received: report.received,
        conflicts: report.conflicts,
    };
    if let Ok(text) = serde_json::to_string(&last) {
        let _ = std::fs::write(ctx.home.join(LAST_SYNC_FILE), text);
    }
}
