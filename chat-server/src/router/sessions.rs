//! Who is connected and who is logged in: the router's tables of connections and of sessions.
//!
//! A connection is known from its handshake (`Opened`) or its first frame and logs in at most once.
//! A **session** belongs to a name (a name has at most one session, whatever its case or
//! look-alikes) and outlives its connection: when the connection drops without a `Leave`, the session
//! is *detached* for the grace period and the name stays taken; a login that presents the session's
//! token attaches a new connection to it (see `resume`). So a session is attached to one connection
//! or to none, and a connection carries at most one session.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use chat_core::{ChatMessage, MessageId, NameMap, UserName};

use super::ConnId;
use crate::protocol::Resume;

/// Idempotency keys remembered per session (a client retries only its unacknowledged sends, which
/// it bounds well below this).
pub const MAX_KEYS: usize = 1024;

/// How a connection asked to log in, kept while its credential is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LoginOptions {
    /// The session to resume, if any.
    pub(super) resume: Option<Presented>,
    /// Not announced to others.
    pub(super) quiet: bool,
    /// The hash of the token a new session gets, chosen by the instance that accepted the login
    /// (cluster mode: the token itself never enters the shared log); `None`: the router draws one.
    pub(super) minted: Option<[u8; 32]>,
}

/// A resume request as the router checks it: the hash of the presented token, and the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Presented {
    /// SHA-256 of the presented token.
    pub(super) hash: [u8; 32],
    /// The highest sequence number the client received.
    pub(super) cursor: u64,
    /// The token itself, echoed in the `Welcome` (empty in cluster mode: the shell fills it in).
    pub(super) token: String,
}

impl Presented {
    /// The router's view of a client's `Resume`.
    pub(super) fn from_resume(resume: Resume) -> Self {
        Presented { hash: super::login::token_hash(&resume.token), cursor: resume.cursor, token: resume.token }
    }
}

/// One connection as the router sees it.
#[derive(Debug, Clone, Default)]
struct Conn {
    /// The user logged in on it, if any.
    name: Option<UserName>,
    /// Whether it reads the shared stream.
    subscribed: bool,
    /// Whether it speaks protocol version 1 (it gets the stream's frames one by one, converted).
    legacy: bool,
    /// Whether its client cannot resume a session (version 1, the text protocol).
    unresumable: bool,
    /// Its login request, while its credential is checked (boxed: rare, and ~100 bytes that every
    /// connection's entry would carry).
    pending: Option<Box<LoginOptions>>,
}

/// The answer to a send, remembered under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message's ID.
    pub id: MessageId,
    /// Named recipients nobody knows.
    pub unknown: Vec<UserName>,
    /// Named recipients it waits for.
    pub queued: Vec<UserName>,
}

/// One user's session.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The connection it is attached to, or `None` while detached.
    pub(super) conn: Option<ConnId>,
    /// SHA-256 of its token (the token itself is only ever in the client's hands).
    pub(super) token: [u8; 32],
    /// Highest sequence number stored before the session began: it receives what follows.
    pub(super) after: u64,
    /// Not announced to others, not listed.
    pub(super) quiet: bool,
    /// While detached: when it ends.
    pub(super) expires: Option<Instant>,
    /// Recent idempotency keys and their answers, oldest first.
    pub(super) keys: VecDeque<(u64, Receipt)>,
    /// The messages kept while the user was offline, delivered at the start of this session (kept so
    /// that a resume can deliver the ones the client missed).
    pub(super) backlog: Vec<ChatMessage>,
}

impl Session {
    /// A new session, attached to `conn` (if any).
    pub(super) fn new(conn: Option<ConnId>, token: [u8; 32], after: u64, quiet: bool) -> Self {
        Session { conn, token, after, quiet, expires: None, keys: VecDeque::new(), backlog: Vec::new() }
    }

    /// The answer given to the send with idempotency `key`, if remembered.
    pub(super) fn receipt(&self, key: u64) -> Option<&Receipt> {
        self.keys.iter().rev().find(|(k, _)| *k == key).map(|(_, r)| r)
    }

    /// Remembers the answer to the send with idempotency `key` (0: none).
    pub(super) fn remember(&mut self, key: u64, receipt: Receipt) {
        if key == 0 {
            return;
        }
        if self.keys.len() == MAX_KEYS {
            self.keys.pop_front();
        }
        self.keys.push_back((key, receipt));
    }
}

/// The connection and session tables.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    conns: HashMap<ConnId, Conn>,
    /// Sessions by name; names that are the same name (case, look-alikes) are one entry.
    users: NameMap<Session>,
    /// Detached sessions by expiry.
    expiries: BTreeSet<(Instant, UserName)>,
    /// The names others may see (sessions that are not quiet), kept sorted for every `Welcome`.
    visible: BTreeSet<UserName>,
}

impl Sessions {
    /// Registers a connection (idempotent).
    pub(super) fn open(&mut self, conn: ConnId) {
        self.conns.entry(conn).or_default();
    }

    /// Marks `conn` as speaking protocol version 1 (which cannot resume).
    pub(super) fn set_legacy(&mut self, conn: ConnId) {
        let c = self.conns.entry(conn).or_default();
        c.legacy = true;
        c.unresumable = true;
    }

    /// Marks `conn` as a client that cannot resume a session.
    pub(super) fn set_unresumable(&mut self, conn: ConnId) {
        self.conns.entry(conn).or_default().unresumable = true;
    }

    /// Whether the client on `conn` could resume its session.
    pub(super) fn is_resumable(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.unresumable)
    }

    /// Whether `conn` speaks protocol version 1.
    pub(super) fn is_legacy(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.legacy)
    }

    /// Keeps `conn`'s login request while its credential is checked.
    pub(super) fn set_pending(&mut self, conn: ConnId, options: LoginOptions) {
        self.conns.entry(conn).or_default().pending = Some(Box::new(options));
    }

    /// Takes `conn`'s kept login request.
    pub(super) fn take_pending(&mut self, conn: ConnId) -> LoginOptions {
        self.conns.get_mut(&conn).and_then(|c| c.pending.take()).map(|o| *o).unwrap_or_default()
    }

    /// Starts `session` for `name`; false (nothing changes) if the same name has a session.
    pub(super) fn start(&mut self, name: UserName, session: Session) -> bool {
        let conn = session.conn;
        let quiet = session.quiet;
        if self.users.insert(name.clone(), session).is_err() {
            return false;
        }
        if !quiet {
            self.visible.insert(name.clone());
        }
        if let Some(conn) = conn {
            self.conns.entry(conn).or_default().name = Some(name);
        }
        true
    }

    /// Attaches `conn` to `name`'s session (now or again); returns the connection it was attached to
    /// before, if any (that one no longer carries the session).
    pub(super) fn attach(&mut self, name: &UserName, conn: ConnId) -> Option<ConnId> {
        let (registered, session) = self.users.get_mut(name)?;
        let registered = registered.clone();
        let previous = session.conn.filter(|&c| c != conn);
        session.conn = Some(conn);
        if let Some(at) = session.expires.take() {
            self.expiries.remove(&(at, registered.clone()));
        }
        if let Some(old) = previous.and_then(|c| self.conns.get_mut(&c)) {
            old.name = None;
            old.subscribed = false;
        }
        self.conns.entry(conn).or_default().name = Some(registered);
        previous
    }

    /// Detaches `conn` from its session, which expires at `expires`; returns the session's name.
    /// `conn` is forgotten.
    pub(super) fn detach(&mut self, conn: ConnId, expires: Instant) -> Option<UserName> {
        let name = self.conns.remove(&conn)?.name?;
        self.update(&name, |s| {
            s.conn = None;
            s.expires = Some(expires);
        });
        self.expiries.insert((expires, name.clone()));
        Some(name)
    }

    /// Ends `name`'s session; returns it.
    pub(super) fn end(&mut self, name: &UserName) -> Option<(UserName, Session)> {
        let (registered, session) = self.users.remove(name)?;
        self.visible.remove(&registered);
        if let Some(at) = session.expires {
            self.expiries.remove(&(at, registered.clone()));
        }
        if let Some(c) = session.conn.and_then(|c| self.conns.get_mut(&c)) {
            c.name = None;
            c.subscribed = false;
        }
        Some((registered, session))
    }

    /// The detached sessions that have expired by `now`, removed from the expiry index (end them).
    pub(super) fn expired(&mut self, now: Instant) -> Vec<UserName> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.expiries.first()
            && *at <= now
        {
            if let Some((_, name)) = self.expiries.pop_first() {
                due.push(name);
            }
        }
        due
    }

    /// Number of detached sessions.
    pub(super) fn detached(&self) -> usize {
        self.expiries.len()
    }

    /// The session detached longest, removed from the expiry index (end it).
    pub(super) fn pop_earliest_detached(&mut self) -> Option<UserName> {
        self.expiries.pop_first().map(|(_, name)| name)
    }

    /// Sets the expiry of `name`'s detached session (a session restored from the journal).
    pub(super) fn set_expiry(&mut self, name: &UserName, at: Instant) {
        let Some((registered, session)) = self.users.get_mut(name) else { return };
        if let Some(old) = session.expires.replace(at) {
            self.expiries.remove(&(old, registered.clone()));
        }
        self.expiries.insert((at, registered.clone()));
    }

    /// When the next detached session expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Changes `name`'s session (`name` as registered: the name of a connection or a session).
    pub(super) fn update(&mut self, name: &UserName, change: impl FnOnce(&mut Session)) {
        if let Some(session) = self.users.get_registered_mut(name) {
            change(session);
        }
    }

    /// The session of `registered`, a name exactly as registered (no normalization: cheap).
    pub(super) fn session_registered(&self, registered: &UserName) -> Option<&Session> {
        self.users.get_registered(registered)
    }

    /// `name`'s session (any case, look-alikes), with the name as registered.
    pub(super) fn session(&self, name: &UserName) -> Option<(&UserName, &Session)> {
        self.users.get(name)
    }

    /// Marks `conn` as reading the shared stream.
    pub(super) fn subscribe(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.subscribed = true;
        }
    }

    /// Forgets `conn`; returns the user whose session was attached to it (the session stays).
    pub(super) fn forget(&mut self, conn: ConnId) -> Option<UserName> {
        self.conns.remove(&conn)?.name
    }

    /// The user logged in on `conn`.
    pub(super) fn name_of(&self, conn: ConnId) -> Option<&UserName> {
        self.conns.get(&conn)?.name.as_ref()
    }

    /// The user with a session under `name` (any case, look-alikes), as registered, and the
    /// connection it is attached to (`None` while detached).
    pub(super) fn lookup(&self, name: &UserName) -> Option<(&UserName, Option<ConnId>)> {
        self.users.get(name).map(|(registered, s)| (registered, s.conn))
    }

    /// Whether `conn` is a known connection.
    pub(super) fn is_known(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Whether `conn` reads the shared stream.
    pub(super) fn is_subscribed(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.subscribed)
    }

    /// Number of sessions (attached or detached).
    pub(super) fn online(&self) -> usize {
        self.users.len()
    }

    /// Number of sessions others may see (quiet sessions are not counted).
    pub(super) fn visible_count(&self) -> usize {
        self.visible.len()
    }

    /// The names with a session that others may see (quiet sessions are not listed), sorted.
    pub(super) fn names_sorted(&self) -> Vec<UserName> {
        self.visible.iter().cloned().collect()
    }

    /// The first `max` of [`Sessions::names_sorted`], without copying the others.
    pub(super) fn names_sorted_upto(&self, max: usize) -> Vec<UserName> {
        self.visible.iter().take(max).cloned().collect()
    }

    /// Every known connection, in ascending order (so outputs about all of them are deterministic).
    pub(super) fn conns(&self) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort_unstable();
        conns
    }
}
