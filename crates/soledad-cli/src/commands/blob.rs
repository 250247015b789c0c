//! `soledad blob …` and `soledad attachment …`: blobs (encrypted on this device,
//! synchronised through the server's blobs API) and document attachments.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;
use soledad_client::{
    AttachmentState, BlobManager, BlobReader, Flag, Order, RemoteListQuery, Soledad, SyncStatus,
};
use std::io::Write as _;

use tokio::io::AsyncReadExt as _;

use crate::context::Context;
use crate::error::CliError;
use crate::output::Output;

/// Examples shown by `soledad blob --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  soledad blob put photo-1 ./photo.jpg
  soledad blob get photo-1 --output ./copy.jpg
  soledad blob list --remote --order -date
  soledad blob flags photo-1 --set PROCESSED
  soledad blob sync
  soledad blob delete photo-1";

/// Examples shown by `soledad attachment --help`.
pub(crate) const ATTACHMENT_EXAMPLES: &str = "\
Examples:
  soledad attachment put report ./report.pdf
  soledad attachment state report
  soledad attachment get report --output ./report.pdf
  soledad attachment delete report";

/// The `blob` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum BlobCommand {
    /// Store FILE as blob ID (encrypted here) and upload it.
    #[command(after_help = "Example:\n  soledad blob put photo-1 ./photo.jpg --namespace photos")]
    Put {
        /// The blob id (A-Z, a-z, 0-9, '-', '_').
        id: String,
        /// The file to store.
        file: PathBuf,
        /// Namespace (default: `default`).
        #[arg(long, default_value = "")]
        namespace: String,
        /// Keep it on this device only (never uploaded).
        #[arg(long)]
        local_only: bool,
    },
    /// Write a blob (downloaded first if needed) to FILE, or to stdout.
    #[command(after_help = "Example:\n  soledad blob get photo-1 -o ./photo.jpg")]
    Get {
        /// The blob id.
        id: String,
        /// Where to write it (written whole, then renamed); default: stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Namespace.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Delete a blob here and on the server.
    #[command(after_help = "Example:\n  soledad blob delete photo-1")]
    Delete {
        /// The blob id.
        id: String,
        /// Namespace.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Show (or with --set replace) a blob's flags on the server.
    #[command(after_help = "Example:\n  soledad blob flags photo-1 --set PROCESSING")]
    Flags {
        /// The blob id.
        id: String,
        /// The new flags (PENDING, PROCESSING, PROCESSED, FAILED; comma-separated).
        #[arg(long, value_delimiter = ',')]
        set: Option<Vec<String>>,
        /// Namespace.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// List blobs: this device's with their state, or the server's with --remote.
    #[command(
        after_help = "Example:\n  soledad --json blob list --remote --flag PENDING --order -date"
    )]
    List {
        /// Namespace.
        #[arg(long, default_value = "")]
        namespace: String,
        /// List the server's blobs.
        #[arg(long)]
        remote: bool,
        /// (--remote) only blobs with this flag.
        #[arg(long)]
        flag: Option<String>,
        /// (--remote) order by upload date: `date` (oldest first) or `-date`.
        #[arg(long, allow_hyphen_values = true)]
        order: Option<String>,
        /// (--remote) list deleted blobs.
        #[arg(long)]
        deleted: bool,
        /// (--remote) print only the number of blobs.
        #[arg(long)]
        count: bool,
    },
    /// Upload what the server lacks and download what this device lacks.
    #[command(after_help = "Example:\n  soledad blob sync --namespace photos")]
    Sync {
        /// Namespace.
        #[arg(long, default_value = "")]
        namespace: String,
    },
}

/// The `attachment` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AttachmentCommand {
    /// Attach FILE to document DOC_ID (stores the document) and upload it.
    #[command(after_help = "Example:\n  soledad attachment put report ./report.pdf")]
    Put {
        /// The document id.
        doc_id: String,
        /// The file to attach.
        file: PathBuf,
    },
    /// Write a document's attachment (downloaded first if needed) to FILE or stdout.
    #[command(after_help = "Example:\n  soledad attachment get report -o ./report.pdf")]
    Get {
        /// The document id.
        doc_id: String,
        /// Where to write it; default: stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Delete a document's attachment (here and on the server) and its reference.
    #[command(after_help = "Example:\n  soledad attachment delete report")]
    Delete {
        /// The document id.
        doc_id: String,
    },
    /// Where the attachment is: NONE, LOCAL, REMOTE or SYNCED.
    #[command(after_help = "Example:\n  soledad --json attachment state report | jq -r .state")]
    State {
        /// The document id.
        doc_id: String,
    },
}

async fn open(ctx: &Context) -> Result<Soledad, CliError> {
    ctx.open_with_blobs().await
}

fn manager(soledad: &Soledad) -> Result<&BlobManager, CliError> {
    soledad
        .blobmanager()
        .ok_or_else(|| CliError::usage("blob store not opened"))
}

/// Runs a `blob` command.
pub(crate) async fn run(ctx: &Context, command: BlobCommand) -> Result<Output, CliError> {
    let soledad = open(ctx).await?;
    let out = run_blob(&soledad, command).await;
    soledad.close().await?;
    out
}

/// Runs an `attachment` command.
pub(crate) async fn run_attachment(
    ctx: &Context,
    command: AttachmentCommand,
) -> Result<Output, CliError> {
    let soledad = open(ctx).await?;
    let out = attachment(&soledad, command).await;
    soledad.close().await?;
    out
}

async fn open_file(path: &Path) -> Result<(tokio::fs::File, u64), CliError> {
    let what = || format!("reading {}", path.display());
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| CliError::io(what(), e))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| CliError::io(what(), e))?
        .len();
    Ok((file, size))
}

/// Copies the plaintext to `output` (temporary file, then rename) or stdout.
async fn write_out(
    mut reader: BlobReader,
    output: Option<&Path>,
    json: serde_json::Value,
) -> Result<Output, CliError> {
    let size = reader.size();
    match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let what = || format!("writing {}", path.display());
            let temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| CliError::io(what(), e))?;
            let mut file =
                tokio::fs::File::from_std(temp.reopen().map_err(|e| CliError::io(what(), e))?);
            tokio::io::copy(&mut reader, &mut file)
                .await
                .map_err(|e| CliError::io(what(), e))?;
            file.sync_all().await.map_err(|e| CliError::io(what(), e))?;
            temp.persist(path)
                .map_err(|e| CliError::io(what(), e.error))?;
            let mut json = json;
            json["size"] = json!(size);
            json["path"] = json!(path.display().to_string());
            Ok(Output::new(
                json,
                format!("wrote {size} bytes to {}", path.display()),
            ))
        }
        None => {
            // The whole stream was authenticated before the first byte is read.
            let mut buf = vec![0u8; 256 * 1024];
            let mut stdout = std::io::stdout().lock();
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| CliError::io("reading the blob", e))?;
                if n == 0 {
                    break;
                }
                stdout
                    .write_all(buf.get(..n).unwrap_or_default())
                    .map_err(|e| CliError::io("writing to stdout", e))?;
            }
            stdout
                .flush()
                .map_err(|e| CliError::io("writing to stdout", e))?;
            Ok(Output::new(json, String::new()))
        }
    }
}

fn not_found() -> CliError {
    CliError::Client(soledad_client::Error::BlobNotFound)
}

async fn run_blob(soledad: &Soledad, command: BlobCommand) -> Result<Output, CliError> {
    let blobs = manager(soledad)?;
    match command {
        BlobCommand::Put {
            id,
            file,
            namespace,
            local_only,
        } => {
            let (reader, size) = open_file(&file).await?;
            blobs.put(&id, reader, size, &namespace, local_only).await?;
            let status = blobs.sync_status(&id, &namespace).await?;
            let status = status.map_or("UNKNOWN", SyncStatus::as_str);
            Ok(Output::new(
                json!({"blob_id": id, "size": size, "status": status}),
                format!("stored {id} ({size} bytes, {status})"),
            ))
        }
        BlobCommand::Get {
            id,
            output,
            namespace,
        } => {
            let reader = blobs.get(&id, &namespace).await?.ok_or_else(not_found)?;
            write_out(reader, output.as_deref(), json!({"blob_id": id})).await
        }
        BlobCommand::Delete { id, namespace } => {
            blobs.delete(&id, &namespace).await?;
            Ok(Output::new(
                json!({"blob_id": id, "deleted": true}),
                format!("deleted {id}"),
            ))
        }
        BlobCommand::Flags { id, set, namespace } => {
            if let Some(names) = set {
                let flags = names
                    .iter()
                    .map(|n| Flag::parse(&n.to_ascii_uppercase()))
                    .collect::<Result<Vec<_>, _>>()?;
                blobs.set_flags(&id, &flags, &namespace).await?;
            }
            let flags: Vec<&str> = blobs
                .get_flags(&id, &namespace)
                .await?
                .into_iter()
                .map(Flag::as_str)
                .collect();
            Ok(Output::new(
                json!({"blob_id": id, "flags": flags}),
                flags.join(" "),
            ))
        }
        BlobCommand::List {
            namespace,
            remote,
            flag,
            order,
            deleted,
            count,
        } => {
            if !remote {
                if flag.is_some() || order.is_some() || deleted || count {
                    return Err(CliError::usage(
                        "--flag, --order, --deleted and --count need --remote",
                    ));
                }
                return local_list(blobs, &namespace).await;
            }
            let query = RemoteListQuery {
                namespace,
                filter_flag: flag
                    .map(|f| Flag::parse(&f.to_ascii_uppercase()))
                    .transpose()?,
                order_by: match order.as_deref() {
                    None => None,
                    Some("date" | "+date") => Some(Order::DateAscending),
                    Some("-date") => Some(Order::DateDescending),
                    Some(_) => return Err(CliError::usage("--order must be date or -date")),
                },
                deleted,
            };
            if count {
                let n = blobs.remote_count(&query).await?;
                return Ok(Output::new(json!({"count": n}), n.to_string()));
            }
            let ids = blobs.remote_list(&query).await?;
            Ok(Output::new(json!({"blobs": ids}), ids.join("\n")))
        }
        BlobCommand::Sync { namespace } => {
            let report = blobs.sync(&namespace).await?;
            let failed: Vec<_> = report
                .failed
                .iter()
                .map(|(id, why)| json!({"blob_id": id, "error": why}))
                .collect();
            let text = format!(
                "uploaded {}, downloaded {}, failed {}",
                report.uploaded.len(),
                report.downloaded.len(),
                report.failed.len()
            );
            Ok(Output::new(
                json!({"uploaded": report.uploaded, "downloaded": report.downloaded, "failed": failed}),
                text,
            ))
        }
    }
}

async fn local_list(blobs: &BlobManager, namespace: &str) -> Result<Output, CliError> {
    let mut rows = Vec::new();
    for id in blobs.local_list(namespace).await? {
        let status = blobs.sync_status(&id, namespace).await?;
        rows.push((id, status.map_or("UNKNOWN", SyncStatus::as_str)));
    }
    let json = json!({"blobs": rows.iter().map(|(id, s)| json!({"blob_id": id, "status": s})).collect::<Vec<_>>()});
    let text = rows
        .iter()
        .map(|(id, s)| format!("{id}\t{s}"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output::new(json, text))
}

fn state_name(state: AttachmentState) -> &'static str {
    match state {
        AttachmentState::None => "NONE",
        AttachmentState::Local => "LOCAL",
        AttachmentState::Remote => "REMOTE",
        AttachmentState::Synced => "SYNCED",
    }
}

async fn document(soledad: &Soledad, doc_id: &str) -> Result<soledad_client::Document, CliError> {
    soledad
        .get_doc(doc_id, false)
        .await?
        .ok_or_else(|| CliError::DocumentNotFound(doc_id.to_owned()))
}

async fn attachment(soledad: &Soledad, command: AttachmentCommand) -> Result<Output, CliError> {
    match command {
        AttachmentCommand::Put { doc_id, file } => {
            let mut doc = document(soledad, &doc_id).await?;
            let (reader, size) = open_file(&file).await?;
            soledad.put_attachment(&mut doc, reader, size).await?;
            soledad.put_doc(&mut doc).await?;
            let state = match soledad.upload_attachment(&doc).await {
                Ok(state) => state,
                Err(soledad_client::Error::NoServer) => AttachmentState::Local,
                Err(err) => return Err(err.into()),
            };
            Ok(Output::new(
                json!({"doc_id": doc_id, "rev": doc.rev, "size": size, "state": state_name(state)}),
                format!("attached {size} bytes to {doc_id} ({})", state_name(state)),
            ))
        }
        AttachmentCommand::Get { doc_id, output } => {
            let doc = document(soledad, &doc_id).await?;
            let reader = soledad.get_attachment(&doc).await?.ok_or_else(not_found)?;
            write_out(reader, output.as_deref(), json!({"doc_id": doc_id})).await
        }
        AttachmentCommand::Delete { doc_id } => {
            let mut doc = document(soledad, &doc_id).await?;
            soledad.delete_attachment(&mut doc).await?;
            soledad.put_doc(&mut doc).await?;
            Ok(Output::new(
                json!({"doc_id": doc_id, "rev": doc.rev, "deleted": true}),
                format!("deleted the attachment of {doc_id}"),
            ))
        }
        AttachmentCommand::State { doc_id } => {
            let doc = document(soledad, &doc_id).await?;
            let state = state_name(soledad.get_attachment_state(&doc).await?);
            Ok(Output::new(
                json!({"doc_id": doc_id, "state": state}),
                state.to_owned(),
            ))
        }
    }
}
