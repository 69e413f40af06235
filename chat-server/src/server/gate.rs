//! Flow control of one connection's reader, set by the owner task: paused while the router holds the
//! connection over its rate limit (`Output::Pause` until `Output::Resume`), so what a flooder sends
//! waits in its own socket (TCP back-pressure) rather than in the owner's queue; and a bound on the
//! frames it has read that the owner has not applied yet ([`MAX_READ_AHEAD`]), so one connection
//! cannot fill the queue that every connection shares and make honest users wait behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, Semaphore};

/// Most frames of one connection read and not yet applied by the owner (as many as the router holds
/// for a connection over its limit, `router::MAX_HELD_SENDS`).
pub(super) const MAX_READ_AHEAD: usize = crate::router::MAX_HELD_SENDS;

/// The reader's gate; see the module documentation.
#[derive(Debug)]
pub(super) struct Gate {
    /// Whether the reader must wait before reading its next frame.
    paused: AtomicBool,
    /// Wakes a paused reader.
    opened: Notify,
    /// Frames the reader may still hand over before the owner applies some.
    credit: Semaphore,
}

impl Gate {
    /// A paused gate: the connection task opens it once the owner knows the connection.
    pub(super) fn paused() -> Arc<Gate> {
        Arc::new(Gate { paused: AtomicBool::new(true), opened: Notify::new(), credit: Semaphore::new(MAX_READ_AHEAD) })
    }

    /// Waits until the reader may read and hand over one more frame, and takes that credit.
    ///
    /// **Cancel-safe**: a credit is taken only when the call completes.
    pub(super) async fn ready(&self) {
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if !self.paused.load(Ordering::Acquire) {
                break;
            }
            opened.await;
        }
        if let Ok(permit) = self.credit.acquire().await {
            permit.forget();
        }
    }

    /// Stops the reader before its next frame.
    pub(super) fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Lets the reader go on.
    pub(super) fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        self.opened.notify_waiters();
    }

    /// The owner applied one frame the reader handed over: one more may be read ahead.
    pub(super) fn applied(&self) {
        self.credit.add_permits(1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paused_reader_waits_for_resume_and_credit_bounds_the_read_ahead() {
        let gate = Gate::paused();
        let waiting = tokio::time::timeout(Duration::from_secs(1), gate.ready()).await;
        assert!(waiting.is_err(), "paused: the reader waits");
        gate.resume();
        for _ in 0..MAX_READ_AHEAD {
            tokio::time::timeout(Duration::from_secs(1), gate.ready()).await.unwrap();
        }
        let waiting = tokio::time::timeout(Duration::from_secs(1), gate.ready()).await;
        assert!(waiting.is_err(), "{MAX_READ_AHEAD} frames ahead of the owner: the reader waits");
        gate.applied();
        tokio::time::timeout(Duration::from_secs(1), gate.ready()).await.unwrap();
        gate.applied();
        gate.pause();
        let g = gate.clone();
        let reader = tokio::spawn(async move { g.ready().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!reader.is_finished(), "paused again: the reader waits though it has credit");
        gate.resume();
        tokio::time::timeout(Duration::from_secs(1), reader).await.unwrap().unwrap();
    }
}
