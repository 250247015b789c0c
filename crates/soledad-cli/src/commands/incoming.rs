//! `soledad incoming`: publish this account's incoming key, and process the
//! incoming box (sealed mail delivered by the provider's MX) into `mail`
//! documents with the example mail consumer.

use clap::{Args, Subcommand};
use serde_json::json;
use soledad_client::{INCOMING_NAMESPACE, IncomingReport, MailConsumer};

use crate::context::Context;
use crate::error::CliError;
use crate::output::Output;

/// Examples shown in `soledad incoming --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  soledad incoming publish-key          # once: services seal mail to this key
  soledad incoming process              # turn delivered mail into documents
  soledad --json incoming process --size-limit 1048576 | jq .skipped_oversized";

/// Options shared by the incoming commands.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// Key epoch (increase by one to rotate the key, then publish it again).
    #[arg(long, default_value_t = 0, value_name = "N")]
    key_epoch: u32,
}

/// `soledad incoming …`.
#[derive(Debug, Subcommand)]
pub(crate) enum IncomingCommand {
    /// Publish this account's incoming public key (replaces the previous one).
    #[command(after_help = "Example:\n  soledad incoming publish-key")]
    PublishKey(KeyArgs),
    /// Claim, open and process pending messages into `mail` documents, sync
    /// them, then mark the messages processed.
    #[command(after_help = "Example:\n  soledad incoming process --size-limit 1048576")]
    Process {
        #[command(flatten)]
        key: KeyArgs,
        /// Skip (and list) messages larger than this many bytes.
        #[arg(long, value_name = "BYTES")]
        size_limit: Option<u64>,
    },
}

fn report_json(report: &IncomingReport) -> serde_json::Value {
    json!({
        "processed": report.processed,
        "failed": report.failed,
        "skipped_claimed": report.skipped_claimed,
        "skipped_oversized": report.skipped_oversized,
    })
}

/// Runs `soledad incoming …`.
pub(crate) async fn run(ctx: &Context, command: IncomingCommand) -> Result<Output, CliError> {
    let soledad = ctx.open().await?;
    let result = match command {
        IncomingCommand::PublishKey(key) => publish(&soledad, key.key_epoch).await,
        IncomingCommand::Process { key, size_limit } => {
            process(&soledad, key.key_epoch, size_limit).await
        }
    };
    soledad.close().await?;
    result
}

async fn publish(soledad: &soledad_client::Soledad, epoch: u32) -> Result<Output, CliError> {
    let processor = soledad.incoming(epoch)?;
    processor.publish_key().await?;
    let key = processor.public_key();
    Ok(Output::new(
        json!({ "public_key": key, "key_epoch": epoch }),
        format!("published incoming key {key}"),
    ))
}

async fn process(
    soledad: &soledad_client::Soledad,
    epoch: u32,
    size_limit: Option<u64>,
) -> Result<Output, CliError> {
    let mut processor = soledad.incoming(epoch)?;
    if let Some(limit) = size_limit {
        processor = processor.size_limit(limit);
    }
    processor.register_consumer(INCOMING_NAMESPACE, std::sync::Arc::new(MailConsumer));
    let report = processor.process_incoming().await?;
    let text = format!(
        "incoming: {} processed, {} failed, {} held by another device, {} too large",
        report.processed.len(),
        report.failed.len(),
        report.skipped_claimed,
        report.skipped_oversized.len()
    );
    Ok(Output::new(report_json(&report), text))
}
