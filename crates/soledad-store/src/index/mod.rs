//! Indexes (JSON databases only): definitions, index rows kept in the same
//! transaction as each write, and the u1db queries (exact, globbing, ranges,
//! keys, counts).
//!
//! Index rows are u1db's `document_fields(doc_id, field_name, value)`: one row
//! per distinct value of each indexed expression (shared between indexes using
//! the same expression); a multi-column query joins one copy per column, so a
//! document matches when some combination of its values does. Tombstones have
//! no rows. Matching never uses `LIKE`/`GLOB`: prefixes are byte ranges, so `%`,
//! `_`, `?` and `[` are literal.

mod eval;
pub(crate) mod expr;

use std::collections::{HashMap, HashSet};

use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Result, StoreError};
use crate::payload::JsonContent;
use crate::read;

/// Parsed expressions by their text (parsing is pure, so it never goes stale).
#[derive(Debug, Default)]
pub(crate) struct ExprCache {
    parsed: HashMap<String, expr::Expr>,
    /// The indexed expressions, cached for the current transaction.
    fields: Option<Vec<String>>,
}

impl ExprCache {
    /// Forgets the cached list of indexed expressions.
    pub(crate) fn forget_fields(&mut self) {
        self.fields = None;
    }

    fn fields(&mut self, conn: &Conn<'_>) -> Result<Vec<String>> {
        if let Some(fields) = &self.fields {
            return Ok(fields.clone());
        }
        let fields = indexed_fields(conn)?;
        self.fields = Some(fields.clone());
        Ok(fields)
    }

    fn get(&mut self, text: &str) -> Result<&expr::Expr> {
        if !self.parsed.contains_key(text) {
            let parsed = expr::parse(text)?;
            self.parsed.insert(text.to_owned(), parsed);
        }
        self.parsed
            .get(text)
            .ok_or(StoreError::Corrupt("expression cache"))
    }
}

/// The distinct expressions used by any index.
fn indexed_fields(conn: &Conn<'_>) -> Result<Vec<String>> {
    conn.with("SELECT DISTINCT field FROM index_definitions", |stmt| {
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

fn insert_fields(
    conn: &Conn<'_>,
    cache: &mut ExprCache,
    doc_id: &str,
    content: &JsonContent,
    fields: &[String],
) -> Result<()> {
    let value = content.to_value()?;
    for field in fields {
        for key in eval::keys(cache.get(field)?, &value) {
            conn.with(
                "INSERT OR IGNORE INTO document_fields (doc_id, field_name, value) VALUES (?1, ?2, ?3)",
                |stmt| Ok(stmt.execute([doc_id, field.as_str(), key.as_str()])?),
            )?;
        }
    }
    Ok(())
}

/// Replaces the index rows of one document (called by every write).
pub(crate) fn update_doc_fields(
    conn: &Conn<'_>,
    cache: &mut ExprCache,
    doc_id: &str,
    content: Option<&JsonContent>,
    old_exists: bool,
) -> Result<()> {
    if old_exists {
        conn.with("DELETE FROM document_fields WHERE doc_id = ?1", |stmt| {
            Ok(stmt.execute([doc_id])?)
        })?;
    }
    let Some(content) = content else {
        return Ok(());
    };
    let fields = cache.fields(conn)?;
    if fields.is_empty() {
        return Ok(());
    }
    insert_fields(conn, cache, doc_id, content, &fields)
}

/// The expressions of an index, in order (`None` if there is no such index).
pub(crate) fn definition(conn: &Conn<'_>, name: &str) -> Result<Option<Vec<String>>> {
    let mut stmt =
        conn.prepare("SELECT field FROM index_definitions WHERE name = ?1 ORDER BY offset")?;
    let fields: Vec<String> = stmt
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(if fields.is_empty() {
        None
    } else {
        Some(fields)
    })
}

fn require_definition(conn: &Conn<'_>, name: &str) -> Result<Vec<String>> {
    definition(conn, name)?.ok_or(StoreError::IndexDoesNotExist)
}

/// u1db `create_index`: idempotent for the same definition; indexes existing documents.
pub(crate) fn create_index(
    conn: &Conn<'_>,
    cache: &mut ExprCache,
    name: &str,
    expressions: &[String],
) -> Result<()> {
    if expressions.is_empty() {
        return Err(StoreError::IndexDefinitionParseError {
            reason: "an index needs at least one expression",
        });
    }
    for expression in expressions {
        cache.get(expression)?;
    }
    if let Some(existing) = definition(conn, name)? {
        return if existing == expressions {
            Ok(())
        } else {
            Err(StoreError::IndexNameTakenError)
        };
    }
    cache.forget_fields();
    let current: HashSet<String> = indexed_fields(conn)?.into_iter().collect();
    let mut insert =
        conn.prepare("INSERT INTO index_definitions (name, offset, field) VALUES (?1, ?2, ?3)")?;
    for (offset, expression) in expressions.iter().enumerate() {
        let offset = i64::try_from(offset).map_err(|_| StoreError::InvalidValueForIndex)?;
        insert.execute(rusqlite::params![name, offset, expression])?;
    }
    let mut new_fields: Vec<String> = Vec::new();
    for expression in expressions {
        if !current.contains(expression) && !new_fields.contains(expression) {
            new_fields.push(expression.clone());
        }
    }
    if new_fields.is_empty() {
        return Ok(());
    }
    let mut stmt =
        conn.prepare("SELECT doc_id, content FROM document WHERE content IS NOT NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let doc_id: String = row.get(0)?;
        let Some(content) = read::payload_column::<JsonContent>(row.get_ref(1)?)? else {
            continue;
        };
        insert_fields(conn, cache, &doc_id, &content, &new_fields)?;
    }
    Ok(())
}

/// u1db `delete_index` (deleting an unknown index is not an error).
pub(crate) fn delete_index(conn: &Conn<'_>, cache: &mut ExprCache, name: &str) -> Result<()> {
    cache.forget_fields();
    conn.execute("DELETE FROM index_definitions WHERE name = ?1", [name])?;
    conn.execute(
        "DELETE FROM document_fields WHERE field_name NOT IN (SELECT field FROM index_definitions)",
        [],
    )?;
    Ok(())
}

/// u1db `list_indexes`: `(name, expressions)` sorted by name.
pub(crate) fn list_indexes(conn: &Conn<'_>) -> Result<Vec<(String, Vec<String>)>> {
    let mut stmt =
        conn.prepare("SELECT name, field FROM index_definitions ORDER BY name, offset")?;
    let mut rows = stmt.query([])?;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let field: String = row.get(1)?;
        match out.last_mut() {
            Some((last, fields)) if *last == name => fields.push(field),
            _ => out.push((name, vec![field])),
        }
    }
    Ok(out)
}

/// One query value after u1db's globbing rules.
#[derive(Debug, Clone, Copy)]
enum Glob<'a> {
    Any,
    Exact(&'a str),
    Prefix(&'a str),
}

/// u1db's rules: `*` only in trailing columns; a `prefix*` only as the last
/// non-`*` value.
fn parse_globs<'a, S: AsRef<str>>(values: &'a [S], width: usize) -> Result<Vec<Glob<'a>>> {
    if values.len() != width {
        return Err(StoreError::InvalidValueForIndex);
    }
    let mut wildcard = false;
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let value = value.as_ref();
        if let Some(prefix) = value.strip_suffix('*') {
            if prefix.is_empty() {
                out.push(Glob::Any);
            } else {
                if wildcard {
                    return Err(StoreError::InvalidGlobbing);
                }
                out.push(Glob::Prefix(prefix));
            }
            wildcard = true;
        } else {
            if wildcard {
                return Err(StoreError::InvalidGlobbing);
            }
            out.push(Glob::Exact(value));
        }
    }
    Ok(out)
}

/// The smallest string greater than every string starting with `prefix`
/// (`None` if there is none).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A condition on one column's value.
#[derive(Debug, Clone)]
enum Pred {
    Eq(String),
    Ge(String),
    Le(String),
    Lt(String),
}

impl Pred {
    fn sql(&self) -> &'static str {
        match self {
            Self::Eq(_) => "=",
            Self::Ge(_) => ">=",
            Self::Le(_) => "<=",
            Self::Lt(_) => "<",
        }
    }

    fn value(&self) -> &str {
        match self {
            Self::Eq(v) | Self::Ge(v) | Self::Le(v) | Self::Lt(v) => v,
        }
    }
}

fn exact_preds(globs: &[Glob<'_>]) -> Vec<Vec<Pred>> {
    globs
        .iter()
        .map(|glob| match glob {
            Glob::Any => Vec::new(),
            Glob::Exact(v) => vec![Pred::Eq((*v).to_owned())],
            Glob::Prefix(p) => {
                let mut preds = vec![Pred::Ge((*p).to_owned())];
                preds.extend(prefix_successor(p).map(Pred::Lt));
                preds
            }
        })
        .collect()
}

enum Select {
    DocIds,
    Keys,
    Count,
}

/// Builds the join of one `document_fields` copy per column.
fn build(fields: &[String], preds: &[Vec<Pred>], select: &Select) -> (String, Vec<String>) {
    let columns: Vec<String> = (0..fields.len()).map(|i| format!("d{i}.value")).collect();
    let columns = columns.join(", ");
    let mut sql = match select {
        Select::DocIds => "SELECT d0.doc_id FROM document_fields d0".to_owned(),
        Select::Keys => format!("SELECT DISTINCT {columns} FROM document_fields d0"),
        Select::Count => "SELECT COUNT(DISTINCT d0.doc_id) FROM document_fields d0".to_owned(),
    };
    let mut params: Vec<String> = Vec::new();
    let conditions = |i: usize, sql: &mut String, params: &mut Vec<String>| {
        sql.push_str(&format!("d{i}.field_name = ?"));
        params.push(fields.get(i).cloned().unwrap_or_default());
        for pred in preds.get(i).into_iter().flatten() {
            sql.push_str(&format!(" AND d{i}.value {} ?", pred.sql()));
            params.push(pred.value().to_owned());
        }
    };
    for i in 1..fields.len() {
        sql.push_str(&format!(
            " JOIN document_fields d{i} ON d{i}.doc_id = d0.doc_id AND "
        ));
        conditions(i, &mut sql, &mut params);
    }
    sql.push_str(" WHERE ");
    conditions(0, &mut sql, &mut params);
    match select {
        Select::DocIds => sql.push_str(&format!(" ORDER BY {columns}, d0.doc_id")),
        Select::Keys => sql.push_str(&format!(" ORDER BY {columns}")),
        Select::Count => {}
    }
    (sql, params)
}

fn matching_docs(conn: &Conn<'_>, fields: &[String], preds: &[Vec<Pred>]) -> Result<Vec<Document>> {
    let (sql, params) = build(fields, preds, &Select::DocIds);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut seen = HashSet::new();
    let mut docs = Vec::new();
    while let Some(row) = rows.next()? {
        let doc_id = crate::ids::DocId::from_stored(row.get(0)?)?;
        if !seen.insert(doc_id.clone()) {
            continue;
        }
        if let Some((doc, _)) = read::get_doc_row::<JsonContent>(conn, &doc_id, true)?
            && !doc.is_tombstone()
        {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// u1db `get_from_index`.
pub(crate) fn get_from_index<S: AsRef<str>>(
    conn: &Conn<'_>,
    name: &str,
    values: &[S],
) -> Result<Vec<Document>> {
    let fields = require_definition(conn, name)?;
    let globs = parse_globs(values, fields.len())?;
    matching_docs(conn, &fields, &exact_preds(&globs))
}

/// Soledad's `get_count_from_index`: the number of documents `get_from_index` returns.
pub(crate) fn get_count_from_index<S: AsRef<str>>(
    conn: &Conn<'_>,
    name: &str,
    values: &[S],
) -> Result<u64> {
    let fields = require_definition(conn, name)?;
    let globs = parse_globs(values, fields.len())?;
    let (sql, params) = build(&fields, &exact_preds(&globs), &Select::Count);
    let count: i64 = conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
        r.get(0)
    })?;
    read::to_generation(count)
}

/// u1db `get_range_from_index`: inclusive bounds, each column bounded separately;
/// `None` or an empty slice is an open end.
pub(crate) fn get_range_from_index<S: AsRef<str>>(
    conn: &Conn<'_>,
    name: &str,
    start: Option<&[S]>,
    end: Option<&[S]>,
) -> Result<Vec<Document>> {
    let fields = require_definition(conn, name)?;
    let mut preds: Vec<Vec<Pred>> = vec![Vec::new(); fields.len()];
    if let Some(start) = start.filter(|s| !s.is_empty()) {
        for (column, glob) in preds.iter_mut().zip(parse_globs(start, fields.len())?) {
            match glob {
                Glob::Any => {}
                Glob::Exact(v) | Glob::Prefix(v) => column.push(Pred::Ge(v.to_owned())),
            }
        }
    }
    if let Some(end) = end.filter(|s| !s.is_empty()) {
        for (column, glob) in preds.iter_mut().zip(parse_globs(end, fields.len())?) {
            match glob {
                Glob::Any => {}
                Glob::Exact(v) => column.push(Pred::Le(v.to_owned())),
                Glob::Prefix(p) => column.extend(prefix_successor(p).map(Pred::Lt)),
            }
        }
    }
    matching_docs(conn, &fields, &preds)
}

/// u1db `get_index_keys`: every distinct key tuple, sorted.
pub(crate) fn get_index_keys(conn: &Conn<'_>, name: &str) -> Result<Vec<Vec<String>>> {
    let fields = require_definition(conn, name)?;
    let (sql, params) = build(&fields, &[], &Select::Keys);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let key = (0..fields.len())
            .map(|i| row.get::<_, String>(i))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(key);
    }
    Ok(out)
}

/// Fuzzing hook (see `fuzz/`): parses an index expression and, if it parses,
/// evaluates it against `doc_json`. Returns whether the expression parsed.
#[doc(hidden)]
pub fn fuzz_index_expression(expression: &str, doc_json: &str) -> bool {
    let Ok(parsed) = expr::parse(expression) else {
        return false;
    };
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(doc_json) {
        let _ = eval::keys(&parsed, &doc);
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn successor_examples() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
    }

    proptest! {
        #[test]
        fn successor_bounds_exactly_the_prefixed_strings(p in "\\PC{1,4}", s in "\\PC{0,6}") {
            if let Some(upper) = prefix_successor(&p) {
                let inside = s.as_str() >= p.as_str() && s.as_str() < upper.as_str();
                prop_assert_eq!(inside, s.starts_with(&p));
                let joined = format!("{p}{s}");
                prop_assert!(joined.as_str() < upper.as_str());
            }
        }
    }
}
