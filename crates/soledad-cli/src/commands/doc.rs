//! `soledad doc …`: documents (u1db semantics: revisions, tombstones, conflicts).

use clap::Subcommand;
use serde_json::json;
use soledad_client::{DocId, Document, Rev, Soledad};

use super::json_argument;
use crate::context::Context;
use crate::error::CliError;
use crate::output::{self, Output};

/// Examples shown by `soledad doc --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  soledad doc create --id ada '{\"name\": \"Ada\", \"email\": \"ada@example.org\"}'
  soledad doc get ada
  soledad doc put ada '{\"name\": \"Ada\", \"email\": \"ada@new.example\"}'
  soledad doc list
  soledad doc conflicts ada && soledad doc resolve ada '{\"name\": \"Ada\"}'
  soledad doc delete ada";

/// The `doc` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum DocCommand {
    /// Create a document from a JSON object (prints its id and revision).
    #[command(
        after_help = "Examples:\n  soledad doc create '{\"name\": \"Ada\"}'\n  \
        echo '{\"name\": \"Ada\"}' | soledad doc create --id ada"
    )]
    Create {
        /// The JSON object; read from stdin when absent or `-`.
        #[arg(value_name = "JSON")]
        content: Option<String>,
        /// The document id (generated when absent).
        #[arg(long)]
        id: Option<String>,
    },
    /// Print a document: id, revision, then its JSON as stored.
    #[command(after_help = "Examples:\n  soledad doc get ada\n  \
        soledad --json doc get ada | jq .rev")]
    Get {
        /// The document id.
        id: String,
        /// Also show a deleted document (its tombstone).
        #[arg(long)]
        include_deleted: bool,
    },
    /// Store a new version of a document (creates it if it does not exist).
    #[command(
        after_help = "Examples:\n  soledad doc put ada '{\"name\": \"Ada L.\"}'\n  \
        soledad doc put ada --rev \"$REV\" '{\"name\": \"Ada L.\"}'  # fails with 4 if ada changed"
    )]
    Put {
        /// The document id.
        id: String,
        /// The JSON object; read from stdin when absent or `-`.
        #[arg(value_name = "JSON")]
        content: Option<String>,
        /// Only if this is still the current revision (else exit 4); default:
        /// whatever is current.
        #[arg(long)]
        rev: Option<String>,
    },
    /// Delete a document (a tombstone is kept and synced).
    #[command(after_help = "Example:\n  soledad doc delete ada")]
    Delete {
        /// The document id.
        id: String,
        /// Only if this is still the current revision (else exit 4).
        #[arg(long)]
        rev: Option<String>,
    },
    /// List every document (and the database generation).
    #[command(after_help = "Examples:\n  soledad doc list\n  \
        soledad --json doc list | jq -r '.docs[].doc_id'")]
    List {
        /// Include deleted documents.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Show the versions of a conflicted document, current first.
    #[command(after_help = "Example:\n  soledad doc conflicts ada")]
    Conflicts {
        /// The document id.
        id: String,
    },
    /// Resolve a conflict: the given content (default: the current version's)
    /// supersedes the conflicting revisions (default: all of them).
    #[command(
        after_help = "Examples:\n  soledad doc resolve ada                    # keep the current version\n  \
        soledad doc resolve ada '{\"name\": \"Ada\"}'   # merge by hand"
    )]
    Resolve {
        /// The document id.
        id: String,
        /// The resolved JSON object (`-` reads stdin); default: the current version.
        #[arg(value_name = "JSON")]
        content: Option<String>,
        /// The revisions it supersedes (repeat or comma-separate); default: all.
        #[arg(long = "rev", value_delimiter = ',')]
        revs: Vec<String>,
    },
}

/// Runs a `doc` command.
pub(crate) async fn run(ctx: &Context, command: DocCommand) -> Result<Output, CliError> {
    let soledad = ctx.open().await?;
    let out = run_open(&soledad, command).await;
    soledad.close().await?;
    out
}

async fn run_open(soledad: &Soledad, command: DocCommand) -> Result<Output, CliError> {
    match command {
        DocCommand::Create { content, id } => {
            let text = json_argument(content.as_deref())?;
            let doc = soledad.create_doc_from_json(&text, id.as_deref()).await?;
            Ok(written("created", &doc))
        }
        DocCommand::Get {
            id,
            include_deleted,
        } => {
            let doc = existing(soledad, &id, include_deleted).await?;
            Ok(Output::new(output::doc_json(&doc), output::doc_text(&doc)))
        }
        DocCommand::Put { id, content, rev } => {
            let text = json_argument(content.as_deref())?;
            let current = soledad.get_doc(&id, true).await?;
            let rev = match rev {
                Some(rev) => Some(Rev::parse(&rev)?),
                None => current.and_then(|d| d.rev),
            };
            let mut doc = Document::new(DocId::parse(&id)?, rev, None);
            doc.set_json(text)?;
            soledad.put_doc(&mut doc).await?;
            Ok(written("stored", &doc))
        }
        DocCommand::Delete { id, rev } => {
            let mut doc = existing(soledad, &id, true).await?;
            if let Some(rev) = rev {
                doc.rev = Some(Rev::parse(&rev)?);
            }
            soledad.delete_doc(&mut doc).await?;
            Ok(written("deleted", &doc))
        }
        DocCommand::List { include_deleted } => {
            let (generation, docs) = soledad.get_all_docs(include_deleted).await?;
            Ok(output::docs_output(
                &docs,
                Some(("generation", json!(generation))),
            ))
        }
        DocCommand::Conflicts { id } => {
            let versions = soledad.get_doc_conflicts(&id).await?;
            if versions.is_empty() {
                // Tell a missing document from one without conflicts.
                existing(soledad, &id, true).await?;
            }
            Ok(output::docs_output(&versions, None))
        }
        DocCommand::Resolve { id, content, revs } => resolve(soledad, id, content, revs).await,
    }
}

async fn resolve(
    soledad: &Soledad,
    id: String,
    content: Option<String>,
    revs: Vec<String>,
) -> Result<Output, CliError> {
    let versions = soledad.get_doc_conflicts(&id).await?;
    let Some(current) = versions.first().cloned() else {
        let doc = existing(soledad, &id, true).await?;
        return Ok(Output::new(
            json!({"doc_id": doc.doc_id, "rev": doc.rev, "resolved": false}),
            format!("{id} has no conflicts"),
        ));
    };
    let revs = if revs.is_empty() {
        versions
            .iter()
            .filter_map(|d| d.rev.as_ref().map(ToString::to_string))
            .collect()
    } else {
        revs
    };
    let mut doc = current;
    if content.is_some() {
        doc.set_json(json_argument(content.as_deref())?)?;
    }
    soledad.resolve_doc(&mut doc, &revs).await?;
    Ok(Output::new(
        json!({"doc_id": doc.doc_id, "rev": doc.rev, "resolved": true, "superseded": revs}),
        format!(
            "resolved {} at {} ({} revisions superseded)",
            doc.doc_id,
            doc.rev.as_deref().unwrap_or("-"),
            revs.len()
        ),
    ))
}

/// The document `id`, or exit 3.
async fn existing(
    soledad: &Soledad,
    id: &str,
    include_deleted: bool,
) -> Result<Document, CliError> {
    soledad
        .get_doc(id, include_deleted)
        .await?
        .ok_or_else(|| CliError::DocumentNotFound(id.to_owned()))
}

fn written(verb: &str, doc: &Document) -> Output {
    let rev = doc.rev.as_deref().unwrap_or("-");
    Output::new(
        json!({"doc_id": doc.doc_id, "rev": doc.rev}),
        format!("{verb} {} {rev}", doc.doc_id),
    )
}
