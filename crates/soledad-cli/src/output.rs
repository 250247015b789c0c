//! What a command prints: one result, rendered for people (text, colour only on
//! a terminal) or for scripts (exactly one JSON value); errors on stderr.

use std::io::Write as _;
use std::process::ExitCode;

use anstyle::{AnsiColor, Style};
use serde_json::{Value, json};
use soledad_client::Document;

use crate::error::CliError;
use crate::exit;

/// Bold, for names and ids in human output.
pub(crate) const BOLD: Style = Style::new().bold();
/// Yellow, for conflicts and warnings.
pub(crate) const WARN: Style = AnsiColor::Yellow.on_default().bold();
/// Green, for the demo's steps.
pub(crate) const STEP: Style = AnsiColor::Green.on_default().bold();
const ERROR: Style = AnsiColor::Red.on_default().bold();

/// A command's result in both renderings.
#[derive(Debug)]
pub(crate) struct Output {
    /// The value printed with `--json`.
    pub(crate) json: Value,
    /// The text printed otherwise (may hold ANSI styles; stripped off a terminal).
    pub(crate) text: String,
}

impl Output {
    /// A result with both renderings.
    pub(crate) fn new(json: Value, text: impl Into<String>) -> Output {
        Output {
            json,
            text: text.into(),
        }
    }

    /// Writes the result to stdout.
    pub(crate) fn print(&self, json: bool) -> std::io::Result<()> {
        let mut out = anstream::stdout().lock();
        if json {
            serde_json::to_writer(&mut out, &self.json)?;
            out.write_all(b"\n")?;
        } else if !self.text.is_empty() {
            out.write_all(self.text.as_bytes())?;
            if !self.text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }
}

/// Prints an error to stderr (a JSON object with `--json`) and returns its exit code.
pub(crate) fn report_error(err: &CliError, json: bool) -> ExitCode {
    let (_, kind) = exit::classify_cli(err);
    let message = err.message();
    let mut stderr = anstream::stderr().lock();
    let _ = if json {
        writeln!(stderr, "{}", json!({"error": kind, "message": message}))
    } else {
        writeln!(stderr, "{ERROR}error:{ERROR:#} {message}")
    };
    ExitCode::from(exit::exit_code(err))
}

/// Prints a clap error (help and version go to stdout with status 0) and returns
/// the exit code: 2 for usage errors.
pub(crate) fn usage_error(err: &clap::Error, json: bool) -> ExitCode {
    if !err.use_stderr() {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let text = err.render().to_string();
        let message = text
            .lines()
            .next()
            .unwrap_or("usage error")
            .trim_start_matches("error: ")
            .to_owned();
        eprintln!("{}", json!({"error": "usage", "message": message}));
    } else {
        let _ = err.print();
    }
    ExitCode::from(exit::Status::Usage.code())
}

/// Whether `--json` (or `SOLEDAD_JSON`) was asked for, read before parsing so
/// that usage errors honour it too.
pub(crate) fn json_requested() -> bool {
    let flag = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    let env = std::env::var("SOLEDAD_JSON")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
    flag || env
}

/// A document as JSON: id, revision, content (null once deleted), conflicts.
pub(crate) fn doc_json(doc: &Document) -> Value {
    let content = doc.json().map_or(Value::Null, |text| {
        serde_json::from_str(text).unwrap_or(Value::Null)
    });
    json!({
        "doc_id": doc.doc_id,
        "rev": doc.rev,
        "content": content,
        "deleted": doc.is_tombstone(),
        "has_conflicts": doc.has_conflicts,
    })
}

/// A document for people: `id  rev` then its JSON as stored.
pub(crate) fn doc_text(doc: &Document) -> String {
    let mut text = format!(
        "{BOLD}{}{BOLD:#}  {}",
        doc.doc_id,
        doc.rev.as_deref().unwrap_or("-")
    );
    if doc.has_conflicts {
        text.push_str(&format!("  {WARN}(conflicted){WARN:#}"));
    }
    text.push('\n');
    text.push_str(doc.json().unwrap_or("(deleted)"));
    text.push('\n');
    text
}

/// Several documents: JSON array, or one `id  rev  json` line each.
pub(crate) fn docs_output(docs: &[Document], extra: Option<(&str, Value)>) -> Output {
    let mut value = json!({"docs": docs.iter().map(doc_json).collect::<Vec<_>>()});
    if let (Some((key, extra)), Some(object)) = (extra, value.as_object_mut()) {
        object.insert(key.to_owned(), extra);
    }
    let mut text = String::new();
    for doc in docs {
        text.push_str(&format!(
            "{BOLD}{}{BOLD:#}  {}  {}",
            doc.doc_id,
            doc.rev.as_deref().unwrap_or("-"),
            doc.json().unwrap_or("(deleted)")
        ));
        if doc.has_conflicts {
            text.push_str(&format!("  {WARN}(conflicted){WARN:#}"));
        }
        text.push('\n');
    }
    Output::new(value, text)
}
