//! The router's state rebuilt from a journal: [`Restore`] reads the records in order and gives the
//! [`RouterState`] a new [`super::Router`] starts from.
//!
//! | record                | what it rebuilds                                                            |
//! |-----------------------|-----------------------------------------------------------------------------|
//! | `Stored` / `Store`    | the last sequence number, Lamport counter and time; the recent messages; the offline queues of its `queued` recipients; the sender session's idempotency key |
//! | `Join`                | an open session (its offline queue becomes its backlog); a known user      |
//! | `Session`             | that session's token hash and quietness                                     |
//! | `Leave`               | the session is over                                                         |
//! | `Start`               | sessions open before it are over unless a `Kept` for them follows           |
//! | `Kept`                | a session that survived that restart                                        |
//! | `RoomJoin`/`RoomPart` | memberships                                                                 |
//!
//! Sessions still open at the end of the journal (the server stopped or crashed while they were
//! open) are restored **detached**: their clients may resume them within the grace period after the
//! new start. Old journals (before sessions and rooms) hold only `Store`, `Join`, `Leave`,
//! `Consumed` and `Start`, and restore the same way.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chat_core::{ChatMessage, NameKey, RoomKey, RoomName, UserName};

use super::sessions::Receipt;
use crate::journal::Record;
use crate::journal::record::Stored;

/// A session open in the journal, kept detached by the new router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSession {
    /// Who.
    pub name: UserName,
    /// SHA-256 of its token (`None` for a session of an old journal, which cannot be resumed).
    pub token: Option<[u8; 32]>,
    /// Highest sequence number stored before it began.
    pub after: u64,
    /// Not announced.
    pub quiet: bool,
    /// Its recent idempotency keys, oldest first.
    pub keys: Vec<(u64, Receipt)>,
    /// The offline messages delivered when it began.
    pub backlog: Vec<ChatMessage>,
}

/// State recovered from the journal at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterState {
    /// Highest server sequence number used so far.
    pub last_seq: u64,
    /// Highest Lamport counter used so far.
    pub lamport: u64,
    /// Time of the newest message (milliseconds since the Unix epoch).
    pub time: u64,
    /// Recent messages, oldest first.
    pub history: Vec<ChatMessage>,
    /// Room memberships: `(room, member, joined after)`, in the order joined.
    pub memberships: Vec<(RoomName, UserName, u64)>,
    /// Users who have logged in, in the order first seen.
    pub known: Vec<UserName>,
    /// Messages kept for offline users, in order: `(recipient, message)`.
    pub offline: Vec<(UserName, ChatMessage)>,
    /// Sessions open at the end of the journal.
    pub sessions: Vec<KeptSession>,
}

/// Rebuilds a [`RouterState`] from records, in journal order.
#[derive(Debug, Default)]
pub struct Restore {
    history: usize,
    offline_per_user: usize,
    state: RouterState,
    recent: VecDeque<ChatMessage>,
    rooms: BTreeMap<(RoomKey, NameKey), (RoomName, UserName, u64, u64)>,
    order: u64,
    known: HashMap<NameKey, UserName>,
    offline: HashMap<NameKey, VecDeque<ChatMessage>>,
    open: HashMap<NameKey, KeptSession>,
    /// Sessions open at the last `Start`, until a `Kept` claims them or another `Start` comes.
    before_start: HashMap<NameKey, KeptSession>,
}

fn key(name: &UserName) -> NameKey {
    name.keys().into_iter().next().expect("a name has a key")
}

impl Restore {
    /// Keeps the newest `history` messages, and up to `offline_per_user` offline messages per user.
    pub fn new(history: usize, offline_per_user: usize) -> Self {
        Restore { history, offline_per_user, ..Restore::default() }
    }

    /// Applies the next record.
    pub fn apply(&mut self, record: &Record) {
        let st = &mut self.state;
        match record {
            Record::Store { message } => self.stored(&Stored::plain(message.clone().into())),
            Record::Stored(stored) => self.stored(stored),
            // `after` is a stored sequence number too: taking the max guarantees no number is reused.
            Record::Start { after } => {
                st.last_seq = st.last_seq.max(*after);
                self.before_start = std::mem::take(&mut self.open);
            }
            Record::Join { name, after } => {
                st.last_seq = st.last_seq.max(*after);
                let backlog = self.offline.remove(&key(name)).map(Vec::from).unwrap_or_default();
                self.know(name);
                let session = KeptSession {
                    name: name.clone(),
                    token: None,
                    after: *after,
                    quiet: false,
                    keys: Vec::new(),
                    backlog,
                };
                self.open.insert(key(name), session);
            }
            Record::Session { name, token, quiet } => {
                if let Some(s) = self.open.get_mut(&key(name)) {
                    s.token = Some(*token);
                    s.quiet = *quiet;
                }
            }
            Record::Kept { name, after } => {
                st.last_seq = st.last_seq.max(*after);
                if let Some(s) = self.before_start.remove(&key(name)) {
                    self.open.insert(key(name), s);
                }
            }
            Record::Leave { name, after, .. } => {
                st.last_seq = st.last_seq.max(*after);
                self.open.remove(&key(name));
            }
            Record::RoomJoin { room, name, after } => {
                self.order += 1;
                self.rooms.insert((room.key(), key(name)), (room.clone(), name.clone(), *after, self.order));
            }
            Record::RoomPart { room, name, .. } => {
                self.rooms.remove(&(room.key(), key(name)));
            }
            Record::Consumed { .. } => {}
        }
    }

    fn know(&mut self, name: &UserName) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.known.entry(key(name)) {
            slot.insert(name.clone());
            self.state.known.push(name.clone());
        }
    }

    fn stored(&mut self, stored: &Stored) {
        let m = &stored.message;
        let st = &mut self.state;
        st.last_seq = st.last_seq.max(m.id.seq);
        st.lamport = st.lamport.max(m.lamport.counter);
        st.time = st.time.max(m.time);
        if self.history > 0 {
            if self.recent.len() == self.history {
                self.recent.pop_front();
            }
            self.recent.push_back(m.clone());
        }
        for name in &stored.queued {
            let queue = self.offline.entry(key(name)).or_default();
            if queue.len() == self.offline_per_user.max(1) {
                queue.pop_front();
            }
            queue.push_back(m.clone());
        }
        if stored.key != 0
            && let Some(s) = self.open.get_mut(&key(&m.sender))
        {
            if s.keys.len() == super::MAX_KEYS {
                s.keys.remove(0);
            }
            let receipt = Receipt { id: m.id, unknown: stored.unknown.clone(), queued: stored.queued.clone() };
            s.keys.push((stored.key, receipt));
        }
    }

    /// The state to start from.
    pub fn finish(mut self) -> RouterState {
        let mut st = self.state;
        st.history = self.recent.into();
        let mut memberships: Vec<(u64, (RoomName, UserName, u64))> =
            self.rooms.into_values().map(|(room, name, after, order)| (order, (room, name, after))).collect();
        memberships.sort_by_key(|(order, _)| *order);
        st.memberships = memberships.into_iter().map(|(_, m)| m).collect();
        let mut offline: Vec<(UserName, ChatMessage)> = Vec::new();
        for (k, queue) in self.offline.drain() {
            let Some(name) = self.known.get(&k) else { continue };
            offline.extend(queue.into_iter().map(|m| (name.clone(), m)));
        }
        offline.sort_by_key(|(_, m)| m.id.seq);
        st.offline = offline;
        let mut sessions: Vec<KeptSession> = self.open.into_values().collect();
        sessions.sort_by(|a, b| a.name.cmp(&b.name));
        st.sessions = sessions;
        st
    }
}
