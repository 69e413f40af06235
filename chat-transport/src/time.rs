//! The shells' one timer helper.

use tokio::time::Instant;

/// Sleeps until `deadline`, or forever if there is none: the "next deadline" branch of a shell's
/// `select!`, fed from a sans-IO core's `poll_timeout()`. Time is tokio's, so tests may pause it.
///
/// **Cancel-safe**: nothing happens until it completes.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
