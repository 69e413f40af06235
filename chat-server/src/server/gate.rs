//! Flow control of one connection's reader, set by the owner task: paused while the router holds the
//! connection over its rate limit (`Output::Pause` until `Output::Resume`), so what a flooder sends
//! waits in its own socket (TCP back-pressure) rather than in the owner's queue; and a bound on the
//! frames it has read that the owner has not applied yet ([`MAX_READ_AHEAD`]), so one connection
//! cannot fill the queue that every connection shares and make honest users wait behind it.
//!
//! At shutdown the owner tells the reader to linger instead of aborting it: the reader stops handing
//! frames over and discards what the client still sends, until the client closes or [`LINGER`] has
//! passed, while the writer writes the last frames (a `storage_unavailable` for each send not made
//! durable, `Closing`) and shuts its side down. Closing a socket with unread input makes the kernel
//! reset the connection, and a reset throws away what the client had not read yet: its answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

/// Most frames of one connection read and not yet applied by the owner (as many as the router holds
/// for a connection over its limit, `router::MAX_HELD_SENDS`).
pub(super) const MAX_READ_AHEAD: usize = crate::router::MAX_HELD_SENDS;

/// Longest time a reader discards input after the server's last frames (see the module documentation).
pub const LINGER: Duration = Duration::from_secs(1);

/// The reader's gate; see the module documentation.
#[derive(Debug)]
pub(super) struct Gate {
    /// Whether the reader must wait before reading its next frame.
    paused: AtomicBool,
    /// Wakes a paused reader.
    opened: Notify,
    /// Frames the reader may still hand over before the owner applies some.
    credit: Semaphore,
    /// Whether the reader must stop handing frames over and linger.
    lingering: AtomicBool,
    /// Wakes the reader to linger.
    linger: Notify,
}

impl Gate {
    /// A paused gate: the connection task opens it once the owner knows the connection.
    pub(super) fn paused() -> Arc<Gate> {
        Arc::new(Gate {
            paused: AtomicBool::new(true),
            opened: Notify::new(),
            credit: Semaphore::new(MAX_READ_AHEAD),
            lingering: AtomicBool::new(false),
            linger: Notify::new(),
        })
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

    /// Tells the reader to linger (see the module documentation).
    pub(super) fn linger(&self) {
        self.lingering.store(true, Ordering::Release);
        self.linger.notify_waiters();
    }

    /// Whether the reader was told to linger.
    pub(super) fn is_lingering(&self) -> bool {
        self.lingering.load(Ordering::Acquire)
    }

    /// Completes once the reader must linger. **Cancel-safe.**
    pub(super) async fn lingering(&self) {
        loop {
            let told = self.linger.notified();
            tokio::pin!(told);
            told.as_mut().enable();
            if self.lingering.load(Ordering::Acquire) {
                return;
            }
            told.await;
        }
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
