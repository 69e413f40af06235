//! Chat messages and their addressing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CoreError, MessageId, RoomName, Timestamp, UserName};

/// Largest accepted message body, in bytes of UTF-8.
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// Most names one multicast may list.
pub const MAX_MULTICAST_RECIPIENTS: usize = 1024;

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recipients {
    /// One user (`/msg bob hi`, `MSG:bob:hi`).
    Unicast(UserName),
    /// A chosen list of users (`/mc bob,carol hi`, `MULTICAST:bob,carol:hi`).
    Multicast(Vec<UserName>),
    /// Everybody online (`hi`, `/all hi`, `BROADCAST:ALL:hi`).
    Broadcast,
    /// The members of a room (`/switch #ops` then `hi`).
    Room(RoomName),
}

impl Recipients {
    /// A multicast to `names`, with duplicates removed (first occurrence kept).
    pub fn multicast(names: impl IntoIterator<Item = UserName>) -> Result<Self, CoreError> {
        let mut list: Vec<UserName> = Vec::new();
        for name in names {
            if !list.contains(&name) {
                list.push(name);
            }
        }
        if list.is_empty() {
            return Err(CoreError::EmptyRecipients);
        }
        if list.len() > MAX_MULTICAST_RECIPIENTS {
            return Err(CoreError::TooLong { len: list.len(), max: MAX_MULTICAST_RECIPIENTS });
        }
        Ok(Recipients::Multicast(list))
    }

    /// The kind of addressing.
    pub fn kind(&self) -> MessageKind {
        match self {
            Recipients::Unicast(_) => MessageKind::Unicast,
            Recipients::Multicast(_) => MessageKind::Multicast,
            Recipients::Broadcast => MessageKind::Broadcast,
            Recipients::Room(_) => MessageKind::Room,
        }
    }

    /// The room, for a room message.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Recipients::Room(room) => Some(room),
            _ => None,
        }
    }

    /// The named recipients: one for unicast, the list for multicast, none for broadcast.
    pub fn names(&self) -> &[UserName] {
        match self {
            Recipients::Unicast(name) => std::slice::from_ref(name),
            Recipients::Multicast(list) => list,
            Recipients::Broadcast | Recipients::Room(_) => &[],
        }
    }

    /// Whether `user` is an intended recipient: everybody is, for a broadcast; the named users for a
    /// unicast or multicast; for a room, membership is not in the message, so nobody here (whoever
    /// orders room messages checks membership).
    pub fn includes(&self, user: &UserName) -> bool {
        match self {
            Recipients::Broadcast => true,
            Recipients::Room(_) => false,
            _ => self.names().contains(user),
        }
    }
}

/// The kind of a message's addressing, as shown in `--json` (`"unicast"`, `"multicast"`, `"broadcast"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// To one user.
    Unicast,
    /// To a list of users.
    Multicast,
    /// To everybody.
    Broadcast,
    /// To the members of a room.
    Room,
}

impl MessageKind {
    /// Lower-case name, as in the JSON events.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Unicast => "unicast",
            MessageKind::Multicast => "multicast",
            MessageKind::Broadcast => "broadcast",
            MessageKind::Room => "room",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a body against [`MAX_BODY_LEN`].
pub fn check_body(body: &str) -> Result<(), CoreError> {
    if body.len() > MAX_BODY_LEN {
        return Err(CoreError::TooLong { len: body.len(), max: MAX_BODY_LEN });
    }
    Ok(())
}

/// A chat message as delivered: ordered, stamped and attributed.
///
/// `lamport` is stamped by whoever orders the message (the server, or the P2P coordinator acting as
/// sequencer) with its Lamport clock after observing the sender's clock. Stamps therefore increase
/// strictly along the delivery order, which respects causality: a message sent after receiving
/// another always carries a larger stamp.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique ID (see [`MessageId`]).
    pub id: MessageId,
    /// Who sent it.
    pub sender: UserName,
    /// Who it is for.
    pub recipients: Recipients,
    /// UTF-8 text, at most [`MAX_BODY_LEN`] bytes.
    pub body: String,
    /// Lamport timestamp of the ordering event; the delivery order is the order of these stamps.
    pub lamport: Timestamp,
    /// Wall-clock time at which the message was ordered, in milliseconds since the Unix epoch (UTC),
    /// by whoever ordered it (the server, or the P2P coordinator); 0 if unknown (older logs).
    pub time: u64,
}

impl ChatMessage {
    /// Whether `user` may see this message: everybody sees broadcasts; unicasts and multicasts are
    /// visible to their sender and their named recipients only; a room message to its sender here,
    /// and to the room's members (which the orderer knows, not the message).
    pub fn is_visible_to(&self, user: &UserName) -> bool {
        &self.sender == user || self.recipients.includes(user)
    }

    /// The kind of addressing.
    pub fn kind(&self) -> MessageKind {
        self.recipients.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn name(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn visibility_follows_addressing() {
        let mk = |recipients| ChatMessage {
            id: MessageId::new(NodeId(0), 1),
            sender: name("alice"),
            recipients,
            body: "hi".into(),
            lamport: Timestamp::new(1, NodeId(0)),
            time: 0,
        };
        let direct = mk(Recipients::Unicast(name("bob")));
        assert!(direct.is_visible_to(&name("alice")));
        assert!(direct.is_visible_to(&name("bob")));
        assert!(!direct.is_visible_to(&name("carol")));
        let group = mk(Recipients::multicast([name("bob"), name("carol")]).unwrap());
        assert!(group.is_visible_to(&name("carol")));
        assert!(!group.is_visible_to(&name("dave")));
        assert!(mk(Recipients::Broadcast).is_visible_to(&name("dave")));
    }

    #[test]
    fn multicast_dedups_and_refuses_empty() {
        let r = Recipients::multicast([name("b"), name("c"), name("b")]).unwrap();
        assert_eq!(r.names(), &[name("b"), name("c")]);
        assert_eq!(Recipients::multicast([]), Err(CoreError::EmptyRecipients));
    }

    #[test]
    fn body_limit() {
        assert!(check_body(&"x".repeat(MAX_BODY_LEN)).is_ok());
        assert_eq!(
            check_body(&"x".repeat(MAX_BODY_LEN + 1)),
            Err(CoreError::TooLong { len: MAX_BODY_LEN + 1, max: MAX_BODY_LEN })
        );
    }
}
