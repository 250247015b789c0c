//! A connection handle with an optional per-transaction statement cache, so a
//! batch prepares each hot statement once instead of once per document.

use std::cell::RefCell;
use std::ops::Deref;

use rusqlite::{Connection, Statement};

use crate::error::Result;

/// A borrowed connection; inside a batch it keeps prepared statements.
pub(crate) struct Conn<'c> {
    conn: &'c Connection,
    cache: Option<RefCell<Vec<(&'static str, Statement<'c>)>>>,
}

impl<'c> Conn<'c> {
    /// Prepares statements each time (single operations, reads).
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self { conn, cache: None }
    }

    /// Keeps prepared statements for the life of this handle (a batch).
    pub(crate) fn caching(conn: &'c Connection) -> Self {
        Self {
            conn,
            cache: Some(RefCell::new(Vec::new())),
        }
    }

    /// Runs `f` with the prepared statement for `sql`.
    pub(crate) fn with<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'c>) -> Result<T>,
    ) -> Result<T> {
        let cached = self.cache.as_ref().and_then(|cache| {
            let mut cache = cache.borrow_mut();
            let position = cache.iter().position(|(s, _)| *s == sql)?;
            Some(cache.swap_remove(position).1)
        });
        let mut stmt = match cached {
            Some(stmt) => stmt,
            None => self.conn.prepare(sql)?,
        };
        let result = f(&mut stmt);
        if let Some(cache) = &self.cache {
            cache.borrow_mut().push((sql, stmt));
        }
        result
    }
}

impl Deref for Conn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl std::fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}
