//! Identities of processes and messages: node IDs and message IDs (user names are in `name`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a process: a P2P node (assigned by the coordinator, never reused) or, in the
/// server topology, the server itself ([`NodeId::SERVER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The node ID the central server uses for its own clock and for the IDs of the messages it orders.
    pub const SERVER: NodeId = NodeId(0);
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one message: the node that created it and that node's sequence number for it.
///
/// In the P2P topology `origin` is the sending node and `seq` counts that node's messages, so a
/// retransmission after a coordinator failover carries the same ID and is recognised as a duplicate.
/// In the server topology the server orders every message, so `origin` is [`NodeId::SERVER`] and
/// `seq` is the server's global sequence number. Displayed as `origin:seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId {
    /// The node that created the message.
    pub origin: NodeId,
    /// Sequence number of the message at its origin, starting at 1.
    pub seq: u64,
}

impl MessageId {
    /// Builds a message ID.
    pub fn new(origin: NodeId, seq: u64) -> Self {
        MessageId { origin, seq }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.origin, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_displays_origin_and_seq() {
        assert_eq!(MessageId::new(NodeId(3), 17).to_string(), "3:17");
        assert!(MessageId::new(NodeId(1), 9) < MessageId::new(NodeId(2), 1));
    }
}
