//! When the shared stream is published: messages at once, join/leave notices debounced.
//!
//! Publishing wakes every reader of the stream. A message is published at the end of the turn that
//! appended it; notices alone wait up to the notice delay, so a storm of logins (each announced to
//! everybody) wakes every reader once per delay rather than once per login. While notices wait,
//! frames queued for one connection may be written before them (`early`), so a reply (a `Welcome`)
//! never waits for the delay; a message never overtakes an earlier message, because a message
//! publishes everything appended before it.
//!
//! | state at the end of a turn          | decision                                   |
//! |-------------------------------------|--------------------------------------------|
//! | nothing unpublished                 | nothing                                    |
//! | a message unpublished               | publish                                    |
//! | only notices, delay not yet started | wait until `now + delay` (`deadline`)      |
//! | only notices, deadline passed       | publish                                    |
//! | only notices, a zero delay          | publish                                    |

use std::time::{Duration, Instant};

/// The publishing policy's state.
#[derive(Debug, Clone)]
pub(super) struct Publisher {
    delay: Duration,
    message: bool,
    notices: bool,
    deadline: Option<Instant>,
}

impl Publisher {
    /// A policy holding notices back for at most `delay`.
    pub(super) fn new(delay: Duration) -> Self {
        Publisher { delay, message: false, notices: false, deadline: None }
    }

    /// A message was appended.
    pub(super) fn appended_message(&mut self) {
        self.message = true;
    }

    /// A notice was appended.
    pub(super) fn appended_notice(&mut self) {
        self.notices = true;
    }

    /// Whether a frame queued now for one connection may be written before what is unpublished
    /// (only notices are waiting).
    pub(super) fn early(&self) -> bool {
        self.notices && !self.message
    }

    /// When waiting notices must be published at the latest.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The end-of-turn decision (see the table); true: publish now.
    pub(super) fn end_turn(&mut self, now: Instant) -> bool {
        if !self.message && !self.notices {
            return false;
        }
        // A zero delay publishes notices at once (cluster mode, where time comes from the log).
        let due = self.delay.is_zero() || self.deadline.is_some_and(|d| d <= now);
        if self.message || due {
            return self.publish_now();
        }
        self.deadline.get_or_insert(now + self.delay);
        false
    }

    /// Publishes whatever waits; true if anything did.
    pub(super) fn publish_now(&mut self) -> bool {
        let any = self.message || self.notices;
        self.message = false;
        self.notices = false;
        self.deadline = None;
        any
    }
}
