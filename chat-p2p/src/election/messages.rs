//! The messages of the Bully election, and the term they are stamped with.
//!
//! | message            | from → to                   | meaning                                             |
//! |--------------------|-----------------------------|-----------------------------------------------------|
//! | `Election{epoch}`  | candidate → every higher ID | "I am holding an election; are you alive?"          |
//! | `Answer{epoch}`    | higher → candidate          | "I am alive and take over the election"             |
//! | `Coordinator{epoch, tag}` | winner → everybody | "I am the coordinator of term `(epoch, me, tag)`"   |
//! | `Resign{epoch}`    | leaving coordinator → all   | "I exit cleanly: elect a successor now"             |
//!
//! Every message carries the highest epoch its sender knows, so a winner always picks an epoch above
//! every epoch it has heard of, and a stale coordinator learns that it is stale.
//!
//! Node IDs are small integers handed out in order of admission, and two sides of a partition may
//! hand out the same number (see `crate::group`), so `(epoch, ID)` alone could name two reigns. A
//! term therefore also carries the winner's *tag*: a random number each process draws when it
//! starts, which makes a term name one reign of one process.

use std::fmt;

use chat_core::NodeId;
use serde::{Deserialize, Serialize};

/// A coordinator's term: the epoch it won, its ID and its process's tag. Ordered by epoch, then by
/// ID, then by tag, so two coordinators elected concurrently in two partitions (same epoch) are
/// still ordered, and a term names one reign of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Term {
    /// The election epoch, starting at 1 for the first coordinator.
    pub epoch: u64,
    /// The coordinator of this term.
    pub coordinator: NodeId,
    /// The coordinator's process tag (random, drawn at start): two processes that hold the same ID
    /// on two sides of a partition never make the same term.
    pub tag: u64,
}

impl Term {
    /// A term of a process with tag 0 (tests, and terms compared by epoch and ID only).
    pub fn new(epoch: u64, coordinator: NodeId) -> Self {
        Term { epoch, coordinator, tag: 0 }
    }

    /// A term of the process with this tag.
    pub fn tagged(epoch: u64, coordinator: NodeId, tag: u64) -> Self {
        Term { epoch, coordinator, tag }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.epoch, self.coordinator)
    }
}

/// One Bully message (the sender is known from the connection it arrives on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionMsg {
    /// A candidate asks a higher node whether it is alive.
    Election {
        /// Highest epoch the sender knows.
        epoch: u64,
    },
    /// A higher node is alive and takes the election over.
    Answer {
        /// Highest epoch the sender knows.
        epoch: u64,
    },
    /// The sender is the coordinator of term `(epoch, sender, tag)`.
    Coordinator {
        /// The epoch the sender won.
        epoch: u64,
        /// The sender's process tag.
        tag: u64,
    },
    /// The coordinator of `epoch` leaves cleanly: start an election at once.
    Resign {
        /// The epoch of the leaving coordinator.
        epoch: u64,
    },
}

impl ElectionMsg {
    /// The epoch carried by the message.
    pub fn epoch(&self) -> u64 {
        match *self {
            ElectionMsg::Election { epoch }
            | ElectionMsg::Answer { epoch }
            | ElectionMsg::Coordinator { epoch, .. }
            | ElectionMsg::Resign { epoch } => epoch,
        }
    }
}
