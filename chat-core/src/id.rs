//! Identities: user names, node IDs and message IDs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Longest accepted user name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// A validated user name: 1 to [`MAX_NAME_LEN`] characters, no whitespace, no `:` and no `,`
/// (the seed's command syntax `MSG:user:text` and `MULTICAST:a,b:text` uses them as separators),
/// and no control characters.
///
/// ```
/// use chat_core::UserName;
/// assert!(UserName::new("alice").is_ok());
/// assert!(UserName::new("al ice").is_err());
/// assert!(UserName::new("a:b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    /// Validates `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, CoreError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.chars().count() > MAX_NAME_LEN {
            Some("it is longer than 32 characters")
        } else if name.chars().any(char::is_whitespace) {
            Some("it contains whitespace")
        } else if name.contains(':') || name.contains(',') {
            Some("it contains ':' or ','")
        } else if name.chars().any(char::is_control) {
            Some("it contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(CoreError::InvalidName { name, reason }),
            None => Ok(UserName(name)),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        UserName::new(value)
    }
}

impl From<UserName> for String {
    fn from(value: UserName) -> Self {
        value.0
    }
}

impl FromStr for UserName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserName::new(s)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

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
    fn name_rules() {
        for ok in ["alice", "Bob_2", "ção", "x", &"a".repeat(32)] {
            assert_eq!(UserName::new(ok).unwrap().as_str(), ok);
        }
        let cases = [
            ("", "it is empty"),
            (&*"a".repeat(33), "it is longer than 32 characters"),
            ("a b", "it contains whitespace"),
            ("a\tb", "it contains whitespace"),
            ("a:b", "it contains ':' or ','"),
            ("a,b", "it contains ':' or ','"),
            ("a\u{7}b", "it contains a control character"),
        ];
        for (bad, why) in cases {
            match UserName::new(bad) {
                Err(CoreError::InvalidName { reason, .. }) => assert_eq!(reason, why, "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn name_length_counts_characters_not_bytes() {
        // 32 two-byte characters are 64 bytes but a valid name.
        assert!(UserName::new("é".repeat(32)).is_ok());
        assert!(UserName::new("é".repeat(33)).is_err());
    }

    #[test]
    fn message_id_displays_origin_and_seq() {
        assert_eq!(MessageId::new(NodeId(3), 17).to_string(), "3:17");
        assert!(MessageId::new(NodeId(1), 9) < MessageId::new(NodeId(2), 1));
    }
}
