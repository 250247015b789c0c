//! Runs blocking filesystem work off the async worker threads.

use std::io;

use super::error::BlobError;

/// Runs `f` on tokio's blocking pool and returns its result.
///
/// A panic or cancellation of the blocking task is reported as an I/O error.
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T, BlobError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(BlobError::Io(io::Error::other(join))),
    }
}
