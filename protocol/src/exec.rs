//! Running CPU-heavy work off the async executor. (A worker that needs
//! randomness takes a [`crate::crypto::WipingRng::fork`] of the session's.)

use crate::{Error, Result};

/// Runs CPU-heavy work on tokio's blocking pool, off the async executor; a
/// panic in `f` is re-raised in the caller.
pub(crate) async fn off_executor<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    join(tokio::task::spawn_blocking(f)).await
}

/// Waits for work started on the blocking pool; a panic there is re-raised
/// here, a cancelled task is an I/O error.
pub(crate) async fn join<T>(handle: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match handle.await {
        Ok(r) => r,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(Error::Io(std::io::Error::other(format!(
                "worker cancelled: {e}"
            )))),
        },
    }
}
