//! `soledad index …`: u1db indexes over the documents' JSON.

use clap::Subcommand;
use serde_json::json;
use soledad_client::Soledad;

use crate::context::Context;
use crate::error::CliError;
use crate::output::{self, BOLD, Output};

/// Examples shown by `soledad index --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  soledad index create by-name 'lower(name)'
  soledad index get by-name 'a*'          # names starting with a
  soledad index range by-name --start a --end m
  soledad index keys by-name
  soledad index count by-name ada
  soledad index list
  soledad index delete by-name";

/// The `index` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum IndexCommand {
    /// Create an index from one or more expressions (`name`, `lower(name)`,
    /// `split_words(title)`, `number(age, 3)` …); idempotent.
    #[command(
        after_help = "Examples:\n  soledad index create by-name 'lower(name)'\n  \
        soledad index create by-city-age city 'number(age, 3)'"
    )]
    Create {
        /// The index name.
        name: String,
        /// The expressions, one per indexed field.
        #[arg(required = true)]
        expressions: Vec<String>,
    },
    /// List the indexes and their expressions.
    #[command(after_help = "Example:\n  soledad index list")]
    List,
    /// Delete an index.
    #[command(after_help = "Example:\n  soledad index delete by-name")]
    Delete {
        /// The index name.
        name: String,
    },
    /// Documents matching one value per expression (a trailing `*` is a prefix glob).
    #[command(after_help = "Examples:\n  soledad index get by-name ada\n  \
        soledad index get by-name 'a*'")]
    Get {
        /// The index name.
        name: String,
        /// One value per expression.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Documents whose index values lie between --start and --end (inclusive;
    /// either may be left open).
    #[command(
        after_help = "Examples:\n  soledad index range by-name --start a --end m\n  \
        soledad index range by-city-age --start paris --start 030"
    )]
    Range {
        /// The index name.
        name: String,
        /// The lower bound, one value per expression (repeat the option).
        #[arg(long, value_name = "VALUE")]
        start: Vec<String>,
        /// The upper bound, one value per expression (repeat the option).
        #[arg(long, value_name = "VALUE")]
        end: Vec<String>,
    },
    /// The distinct keys of an index.
    #[command(after_help = "Example:\n  soledad index keys by-name")]
    Keys {
        /// The index name.
        name: String,
    },
    /// How many documents `index get` would return.
    #[command(after_help = "Example:\n  soledad index count by-name 'a*'")]
    Count {
        /// The index name.
        name: String,
        /// One value per expression.
        #[arg(required = true)]
        values: Vec<String>,
    },
}

/// Runs an `index` command.
pub(crate) async fn run(ctx: &Context, command: IndexCommand) -> Result<Output, CliError> {
    let soledad = ctx.open().await?;
    let out = run_open(&soledad, command).await;
    soledad.close().await?;
    out
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

/// A range bound: `None` (open) when no value was given.
fn bound(values: &[String]) -> Option<Vec<&str>> {
    (!values.is_empty()).then(|| strs(values))
}

async fn run_open(soledad: &Soledad, command: IndexCommand) -> Result<Output, CliError> {
    match command {
        IndexCommand::Create { name, expressions } => {
            soledad.create_index(&name, &strs(&expressions)).await?;
            Ok(Output::new(
                json!({"name": name, "expressions": expressions}),
                format!("created index {name}"),
            ))
        }
        IndexCommand::List => {
            let indexes = soledad.list_indexes().await?;
            let text: String = indexes
                .iter()
                .map(|(name, exprs)| format!("{BOLD}{name}{BOLD:#}  {}\n", exprs.join(", ")))
                .collect();
            let value: Vec<_> = indexes
                .iter()
                .map(|(name, exprs)| json!({"name": name, "expressions": exprs}))
                .collect();
            Ok(Output::new(json!({"indexes": value}), text))
        }
        IndexCommand::Delete { name } => {
            soledad.delete_index(&name).await?;
            Ok(Output::new(
                json!({"name": name, "deleted": true}),
                format!("deleted index {name}"),
            ))
        }
        IndexCommand::Get { name, values } => {
            let docs = soledad.get_from_index(&name, &strs(&values)).await?;
            Ok(output::docs_output(&docs, None))
        }
        IndexCommand::Range { name, start, end } => {
            let (start, end) = (bound(&start), bound(&end));
            let docs = soledad
                .get_range_from_index(&name, start.as_deref(), end.as_deref())
                .await?;
            Ok(output::docs_output(&docs, None))
        }
        IndexCommand::Keys { name } => {
            let keys = soledad.get_index_keys(&name).await?;
            let text: String = keys.iter().map(|k| format!("{}\n", k.join("\t"))).collect();
            Ok(Output::new(json!({"keys": keys}), text))
        }
        IndexCommand::Count { name, values } => {
            let count = soledad.get_count_from_index(&name, &strs(&values)).await?;
            Ok(Output::new(json!({"count": count}), count.to_string()))
        }
    }
}
