//! A small SQLite actor: one dedicated thread owns the connection, async code
//! sends it closures and awaits their results. SQLite never runs on an async
//! worker thread (STYLE §5).

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::Error;

type Job = Box<dyn FnOnce(&mut Connection) + Send + 'static>;

/// Handle to a connection owned by a worker thread; cheap to clone. The thread
/// ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct SqliteActor {
    jobs: mpsc::Sender<Job>,
}

impl SqliteActor {
    /// Opens (creating if needed) the plain SQLite database at `path`, runs
    /// `schema` once, and starts the worker thread.
    pub(crate) fn open(path: &Path, name: &str, schema: &str) -> Result<SqliteActor, Error> {
        let conn = open_connection(path)?;
        conn.execute_batch(schema)?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("sqlite-{name}"))
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = receiver.recv() {
                    job(&mut conn);
                }
            })
            .map_err(Error::io("starting a storage thread"))?;
        Ok(SqliteActor { jobs })
    }

    /// Runs `f` on the worker thread and returns its result.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The receiver may be gone if the request was cancelled; nothing to do then.
            let _ = reply.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| Error::StorageUnavailable)?;
        result.await.map_err(|_| Error::StorageUnavailable)?
    }
}

/// Opens a plain (unencrypted) SQLite file tuned for a small server store.
/// The server only keeps hashes, ciphertext and metadata: no SQLCipher key.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("creating the data directory"))?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: with WAL, each commit fsyncs the log before the request is
    // answered, so an acknowledged token or shared document survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}
