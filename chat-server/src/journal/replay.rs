//! The meaning of a journal: who was online, what each `Consumed` watermark delivered to whom, and
//! which records break the rules. Shared by `log show` (expansion) and `log verify` (checks).
//!
//! Memory stays bounded by the slowest online reader: a stored message is kept only while some online
//! user's watermark is below it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use chat_core::{ChatMessage, MessageId, NameKey, NodeId, Recipients, RoomKey, RoomName, UserName};

use crate::journal::{Record, Stored};

/// The identity of a name (case and look-alikes folded).
fn key(name: &UserName) -> NameKey {
    name.keys().into_iter().next().expect("a name has a key")
}

/// One way a journal can break the rules of `crate::journal::record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViolationKind {
    /// The file does not start with `DCHTLOG1`.
    BadHeader {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// Bytes that are not a record, followed later by valid records (corruption in the middle).
    Corrupt {
        /// Why the bytes are not a record.
        reason: String,
        /// Byte offset of the next valid record, where checking resumed.
        resume: u64,
    },
    /// A `Start` whose `after` is not the highest stored sequence number.
    StartMismatch {
        /// `after` in the record.
        after: u64,
        /// Highest stored sequence number at that point.
        last_seq: u64,
    },
    /// A `Join` or `Leave` whose `after` is not the highest stored sequence number.
    AfterMismatch {
        /// `"JOIN"` or `"LEAVE"`.
        record: &'static str,
        /// Who.
        user: UserName,
        /// `after` in the record.
        after: u64,
        /// Highest stored sequence number at that point.
        last_seq: u64,
    },
    /// A `Join` of a user already online.
    JoinWhileOnline {
        /// Who.
        user: UserName,
    },
    /// A `Leave` of a user not online.
    LeaveWhileOffline {
        /// Who.
        user: UserName,
    },
    /// A stored message whose ID is not `(0, seq)` (the server orders every message).
    BadMessageId {
        /// The ID found.
        id: MessageId,
    },
    /// A stored sequence number that is not the previous one plus one.
    SeqGap {
        /// The sequence number expected.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// A Lamport counter not greater than the previous stored message's.
    LamportNotIncreasing {
        /// Sequence number of the message.
        seq: u64,
        /// Counter of the previous stored message.
        previous: u64,
        /// Counter of this message.
        found: u64,
    },
    /// A message stored for a sender that is not online.
    SenderOffline {
        /// Sequence number of the message.
        seq: u64,
        /// The sender.
        user: UserName,
    },
    /// A unicast or multicast naming a user that was not online when it was stored.
    RecipientOffline {
        /// Sequence number of the message.
        seq: u64,
        /// The named recipient.
        user: UserName,
    },
    /// A watermark for a user that is not online.
    ConsumeByOffline {
        /// Who.
        user: UserName,
        /// The watermark.
        upto: u64,
    },
    /// A room message from a user who is not a member of the room.
    SenderNotMember {
        /// Sequence number of the message.
        seq: u64,
        /// The sender.
        user: UserName,
        /// The room.
        room: RoomName,
    },
    /// A `Kept` for a user whose session was not open before the last `Start`.
    KeptUnknown {
        /// Who.
        user: UserName,
    },
    /// A watermark below the user's previous one: those deliveries would be consumed twice.
    WatermarkBackwards {
        /// Who.
        user: UserName,
        /// The previous watermark (or the `Join`'s `after`).
        previous: u64,
        /// The new watermark.
        upto: u64,
    },
    /// A watermark above the highest stored sequence number: consumption of an unproduced message.
    WatermarkBeyondStored {
        /// Who.
        user: UserName,
        /// The watermark.
        upto: u64,
        /// Highest stored sequence number at that point.
        last_seq: u64,
    },
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ViolationKind::*;
        match self {
            BadHeader { found } => write!(f, "bad header {found:02x?}, expected \"DCHTLOG1\""),
            Corrupt { reason, resume } => write!(f, "corrupt record: {reason}; next valid record at byte {resume}"),
            StartMismatch { after, last_seq } => {
                write!(f, "START after {after}, but the highest stored seq is {last_seq}")
            }
            AfterMismatch { record, user, after, last_seq } => {
                write!(f, "{record} {user} after {after}, but the highest stored seq is {last_seq}")
            }
            JoinWhileOnline { user } => write!(f, "JOIN of {user}, who is already online"),
            LeaveWhileOffline { user } => write!(f, "LEAVE of {user}, who is not online"),
            BadMessageId { id } => write!(f, "stored message has id {id}, expected origin 0 (the server)"),
            SeqGap { expected, found } => write!(f, "stored seq {found}, expected {expected}"),
            LamportNotIncreasing { seq, previous, found } => {
                write!(f, "seq {seq} has Lamport counter {found}, not greater than the previous message's {previous}")
            }
            SenderOffline { seq, user } => write!(f, "seq {seq} was sent by {user}, who is not online"),
            RecipientOffline { seq, user } => {
                write!(f, "seq {seq} names recipient {user}, who was not online when it was stored")
            }
            ConsumeByOffline { user, upto } => {
                write!(f, "consumption by {user} (watermark {upto}), who is not online")
            }
            WatermarkBackwards { user, previous, upto } => write!(
                f,
                "watermark of {user} goes back from {previous} to {upto}: seq {} to {previous} consumed twice",
                upto + 1
            ),
            SenderNotMember { seq, user, room } => {
                write!(f, "seq {seq} was sent to {room} by {user}, who is not in it")
            }
            KeptUnknown { user } => write!(f, "KEPT {user}, whose session was not open when the server stopped"),
            WatermarkBeyondStored { user, upto, last_seq } => write!(
                f,
                "watermark of {user} is {upto}, beyond the highest stored seq {last_seq}: \
                 consumption of unproduced messages"
            ),
        }
    }
}

/// A stored message still awaited by some online user.
struct Pending {
    message: Arc<ChatMessage>,
    /// Sorted, without duplicates (binary-searched per delivery).
    intended: Vec<UserName>,
}

/// One delivery covered by a `Consumed` record.
pub(crate) struct Delivery {
    /// The recipient.
    pub(crate) user: UserName,
    /// The message.
    pub(crate) message: Arc<ChatMessage>,
}

/// Replays records in file order.
#[derive(Default)]
pub(crate) struct Replay {
    last_seq: u64,
    last_lamport: Option<u64>,
    /// Online users and their watermarks.
    online: BTreeMap<UserName, u64>,
    /// Users online when the server last started (until a `Kept` claims them), and their watermarks.
    before_start: BTreeMap<UserName, u64>,
    /// Room members, by room and name key (with the name as journaled).
    rooms: BTreeMap<RoomKey, BTreeMap<NameKey, UserName>>,
    pending: VecDeque<Pending>,
    /// `Store` records seen.
    pub(crate) messages: u64,
    /// Deliveries expanded from `Consumed` records.
    pub(crate) deliveries: u64,
}

impl Replay {
    /// Applies `record`, pushing the deliveries it covers (for `Consumed`) and any rule it breaks.
    pub(crate) fn apply(&mut self, record: &Record, out: &mut Vec<Delivery>, problems: &mut Vec<ViolationKind>) {
        match record {
            Record::Start { after } => {
                if *after != self.last_seq {
                    problems.push(ViolationKind::StartMismatch { after: *after, last_seq: self.last_seq });
                }
                self.before_start = std::mem::take(&mut self.online);
            }
            Record::Kept { name, after } => {
                self.check_after("KEPT", name, *after, problems);
                match self.before_start.remove(name) {
                    Some(mark) => {
                        self.online.insert(name.clone(), mark.max(*after));
                    }
                    None => problems.push(ViolationKind::KeptUnknown { user: name.clone() }),
                }
            }
            Record::Session { .. } => {}
            Record::RoomJoin { room, name, .. } => {
                self.rooms.entry(room.key()).or_default().insert(key(name), name.clone());
            }
            Record::RoomPart { room, name, .. } => {
                if let Some(members) = self.rooms.get_mut(&room.key()) {
                    members.remove(&key(name));
                }
            }
            Record::Join { name, after } => {
                self.check_after("JOIN", name, *after, problems);
                if self.online.insert(name.clone(), *after).is_some() {
                    problems.push(ViolationKind::JoinWhileOnline { user: name.clone() });
                }
            }
            Record::Leave { name, after, .. } => {
                self.check_after("LEAVE", name, *after, problems);
                if self.online.remove(name).is_none() {
                    problems.push(ViolationKind::LeaveWhileOffline { user: name.clone() });
                }
            }
            Record::Store { message } => self.store(&Stored::plain(message.clone().into()), problems),
            Record::Stored(stored) => self.store(stored, problems),
            Record::Consumed { marks } => {
                for (user, upto) in marks {
                    self.consume(user, *upto, out, problems);
                }
            }
        }
        self.prune();
    }

    fn check_after(&self, record: &'static str, user: &UserName, after: u64, problems: &mut Vec<ViolationKind>) {
        if after != self.last_seq {
            problems.push(ViolationKind::AfterMismatch { record, user: user.clone(), after, last_seq: self.last_seq });
        }
    }

    fn store(&mut self, stored: &Stored, problems: &mut Vec<ViolationKind>) {
        let message = &stored.message;
        self.messages += 1;
        let seq = message.id.seq;
        if message.id.origin != NodeId::SERVER {
            problems.push(ViolationKind::BadMessageId { id: message.id });
        }
        if seq != self.last_seq + 1 {
            problems.push(ViolationKind::SeqGap { expected: self.last_seq + 1, found: seq });
        }
        let counter = message.lamport.counter;
        if let Some(previous) = self.last_lamport.filter(|&p| counter <= p) {
            problems.push(ViolationKind::LamportNotIncreasing { seq, previous, found: counter });
        }
        if !self.online.contains_key(&message.sender) {
            problems.push(ViolationKind::SenderOffline { seq, user: message.sender.clone() });
        }
        let mut intended: Vec<UserName> = match &message.recipients {
            Recipients::Broadcast => self.online.keys().filter(|u| **u != message.sender).cloned().collect(),
            Recipients::Room(room) => {
                let members = self.rooms.get(&room.key());
                if !members.is_some_and(|m| m.contains_key(&key(&message.sender))) {
                    let (user, room) = (message.sender.clone(), room.clone());
                    problems.push(ViolationKind::SenderNotMember { seq, user, room });
                }
                members
                    .into_iter()
                    .flat_map(|m| m.values())
                    .filter(|u| **u != message.sender && self.online.contains_key(*u))
                    .cloned()
                    .collect()
            }
            named => {
                let mut intended = Vec::new();
                for user in named.names().iter().filter(|u| **u != message.sender) {
                    if self.online.contains_key(user) {
                        intended.push(user.clone());
                    } else if !stored.queued.contains(user) {
                        problems.push(ViolationKind::RecipientOffline { seq, user: user.clone() });
                    }
                }
                intended
            }
        };
        intended.sort_unstable();
        intended.dedup();
        self.last_seq = self.last_seq.max(seq);
        self.last_lamport = Some(self.last_lamport.map_or(counter, |p| p.max(counter)));
        if !intended.is_empty() {
            self.pending.push_back(Pending { message: Arc::new(message.clone()), intended });
        }
    }

    fn consume(&mut self, user: &UserName, upto: u64, out: &mut Vec<Delivery>, problems: &mut Vec<ViolationKind>) {
        let Some(previous) = self.online.get(user).copied() else {
            problems.push(ViolationKind::ConsumeByOffline { user: user.clone(), upto });
            return;
        };
        if upto < previous {
            problems.push(ViolationKind::WatermarkBackwards { user: user.clone(), previous, upto });
            return;
        }
        if upto > self.last_seq {
            problems.push(ViolationKind::WatermarkBeyondStored { user: user.clone(), upto, last_seq: self.last_seq });
        }
        let upto = upto.min(self.last_seq);
        let start = self.pending.partition_point(|p| p.message.id.seq <= previous);
        for p in self.pending.range(start..) {
            if p.message.id.seq > upto {
                break;
            }
            if p.intended.binary_search(user).is_ok() {
                self.deliveries += 1;
                out.push(Delivery { user: user.clone(), message: Arc::clone(&p.message) });
            }
        }
        self.online.insert(user.clone(), upto.max(previous));
    }

    /// Drops stored messages every online user's watermark has passed (all of them if nobody is online:
    /// a later `Join` only receives messages stored after it).
    fn prune(&mut self) {
        let floor = self.online.values().copied().min().unwrap_or(u64::MAX);
        while self.pending.front().is_some_and(|p| p.message.id.seq <= floor) {
            self.pending.pop_front();
        }
    }
}
