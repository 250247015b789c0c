//! A dedicated thread that owns one database, so async callers never run SQLite
//! on a runtime worker.
//!
//! The database is a synchronous single-connection API. A [`StoreWorker`] moves it
//! to its own thread and runs the closures sent to it one after another, so every
//! caller sees one serial history (each closure may run a whole batch atomically).
//! Runtime-agnostic: the answer comes back on a oneshot channel.

use std::sync::mpsc;
use std::thread;

use futures_channel::oneshot;

use crate::database::Database;
use crate::error::Result;
use crate::payload::{JsonContent, Payload};

type Job<P> = Box<dyn FnOnce(&mut Database<P>) + Send>;

/// What the thread is asked to do.
enum Message<P: Payload> {
    /// Run a job on the database.
    Run(Job<P>),
    /// Close the database, report how that went, and stop.
    Close(oneshot::Sender<Result<()>>),
}

/// The worker thread stopped (a job panicked, or the thread could not start); the
/// database is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("database worker thread is not running")]
pub struct WorkerStopped;

/// Handle to the thread owning a [`Database`]. Clones share the thread; the
/// database is closed when the last handle is dropped and queued jobs are done.
pub struct StoreWorker<P: Payload = JsonContent> {
    jobs: mpsc::Sender<Message<P>>,
}

impl<P: Payload> Clone for StoreWorker<P> {
    fn clone(&self) -> Self {
        StoreWorker {
            jobs: self.jobs.clone(),
        }
    }
}

impl<P: Payload> std::fmt::Debug for StoreWorker<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWorker")
    }
}

impl<P: Payload> StoreWorker<P> {
    /// Moves `db` to a new thread named `name`.
    ///
    /// # Errors
    /// [`WorkerStopped`] if the operating system refuses a new thread.
    pub fn spawn(db: Database<P>, name: &str) -> std::result::Result<Self, WorkerStopped> {
        let (jobs, queue) = mpsc::channel::<Message<P>>();
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut db = db;
                while let Ok(message) = queue.recv() {
                    match message {
                        Message::Run(job) => job(&mut db),
                        Message::Close(reply) => {
                            // The caller may have stopped waiting; closing happens anyway.
                            let _ = reply.send(db.close());
                            return;
                        }
                    }
                }
            })
            .map_err(|_| WorkerStopped)?;
        Ok(StoreWorker { jobs })
    }

    /// Runs `f` on the database thread and returns what it returned.
    ///
    /// # Errors
    /// [`WorkerStopped`] if the thread is gone.
    pub async fn call<T, F>(&self, f: F) -> std::result::Result<T, WorkerStopped>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database<P>) -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job<P> = Box::new(move |db| {
            // The caller may have stopped waiting; the work is done either way.
            let _ = reply.send(f(db));
        });
        self.jobs
            .send(Message::Run(job))
            .map_err(|_| WorkerStopped)?;
        answer.await.map_err(|_| WorkerStopped)
    }

    /// Closes the database once the jobs queued before this call are done, and
    /// stops the thread: every later call on any clone fails with [`WorkerStopped`].
    ///
    /// # Errors
    /// [`WorkerCallError::Stopped`] if the thread was already gone, or the close's
    /// own [`crate::StoreError`] (the database is closed either way).
    pub async fn close(&self) -> std::result::Result<(), WorkerCallError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Message::Close(reply))
            .map_err(|_| WorkerStopped)?;
        Ok(answer.await.map_err(|_| WorkerStopped)??)
    }

    /// [`call`](Self::call) for the common case of a store operation.
    ///
    /// # Errors
    /// [`WorkerCallError::Stopped`] or the operation's own [`crate::StoreError`].
    pub async fn run<T, F>(&self, f: F) -> std::result::Result<T, WorkerCallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database<P>) -> Result<T> + Send + 'static,
    {
        Ok(self.call(f).await??)
    }
}

/// The error of [`StoreWorker::run`]: the worker is gone, or the operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerCallError {
    /// See [`WorkerStopped`].
    #[error(transparent)]
    Stopped(#[from] WorkerStopped),
    /// The operation's error.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> crate::DocId {
        crate::DocId::parse(text).unwrap()
    }

    #[test]
    fn runs_jobs_in_order_on_its_own_thread() {
        let db = Database::<JsonContent>::open_in_memory().unwrap();
        let worker = StoreWorker::spawn(db, "test-worker").unwrap();
        let run = async {
            let doc = worker
                .run(|db| db.create_doc(&serde_json::json!({"k": 1}), Some(&id("d1"))))
                .await
                .unwrap();
            let name = worker
                .call(|_| thread::current().name().map(str::to_owned))
                .await
                .unwrap();
            let read = worker.run(|db| db.get_doc(&id("d1"), false)).await.unwrap();
            (doc, name, read)
        };
        let (doc, name, read) = futures_executor_block_on(run);
        assert_eq!(name.as_deref(), Some("test-worker"));
        assert_eq!(read.map(|d| d.rev), Some(doc.rev));
    }

    #[test]
    fn close_finishes_queued_jobs_then_refuses_new_ones() {
        let db = Database::<JsonContent>::open_in_memory().unwrap();
        let worker = StoreWorker::spawn(db, "test-worker").unwrap();
        let other = worker.clone();
        let outcome = futures_executor_block_on(async {
            let queued =
                worker.run(|db| db.create_doc(&serde_json::json!({"k": 1}), Some(&id("d1"))));
            let (created, closed) = (queued.await.is_ok(), worker.close().await);
            let after = other.run(|db| db.get_doc(&id("d1"), false)).await;
            (
                created,
                closed.is_ok(),
                matches!(after, Err(WorkerCallError::Stopped(_))),
            )
        });
        assert_eq!(outcome, (true, true, true));
        assert!(matches!(
            futures_executor_block_on(other.close()),
            Err(WorkerCallError::Stopped(_))
        ));
    }

    #[test]
    fn a_panicking_job_stops_the_worker_with_a_typed_error() {
        let db = Database::<JsonContent>::open_in_memory().unwrap();
        let worker = StoreWorker::spawn(db, "test-worker").unwrap();
        let outcome = futures_executor_block_on(async {
            let first = worker.call(|_| -> () { panic!("job failed") }).await;
            let second = worker.call(|_| 1).await;
            (first, second)
        });
        assert_eq!(outcome, (Err(WorkerStopped), Err(WorkerStopped)));
    }

    /// A minimal executor: these futures only wait on the worker thread.
    fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            thread::park();
        }
    }
}
