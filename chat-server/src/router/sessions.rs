//! Who is connected and who is logged in: the router's one table of connections.
//!
//! A connection is known from its handshake (`Opened`) or its first frame, logs in at most once
//! (a name maps to exactly one connection and back), and reads the shared stream once subscribed.

use std::collections::HashMap;

use chat_core::{NameMap, UserName};

use super::ConnId;

/// One connection as the router sees it.
#[derive(Debug, Clone, Default)]
struct Conn {
    /// The user logged in on it, if any.
    name: Option<UserName>,
    /// Whether it reads the shared stream.
    subscribed: bool,
}

/// The connection table.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    conns: HashMap<ConnId, Conn>,
    /// Logged-in users; names that are the same name (case, look-alikes) are one entry.
    by_name: NameMap<ConnId>,
}

impl Sessions {
    /// Registers a connection (idempotent).
    pub(super) fn open(&mut self, conn: ConnId) {
        self.conns.entry(conn).or_default();
    }

    /// Logs `name` in on `conn`; false (nothing changes) if the same name is logged in already.
    pub(super) fn log_in(&mut self, conn: ConnId, name: UserName) -> bool {
        if self.by_name.insert(name.clone(), conn).is_err() {
            return false;
        }
        self.conns.entry(conn).or_default().name = Some(name);
        true
    }

    /// Marks `conn` as reading the shared stream.
    pub(super) fn subscribe(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.subscribed = true;
        }
    }

    /// Forgets `conn`; returns the user that was logged in on it.
    pub(super) fn forget(&mut self, conn: ConnId) -> Option<UserName> {
        let name = self.conns.remove(&conn)?.name?;
        self.by_name.remove(&name);
        Some(name)
    }

    /// The user logged in on `conn`.
    pub(super) fn name_of(&self, conn: ConnId) -> Option<&UserName> {
        self.conns.get(&conn)?.name.as_ref()
    }

    /// The user logged in under `name` (the same name: any case, look-alikes), as registered, and
    /// its connection.
    pub(super) fn lookup(&self, name: &UserName) -> Option<(&UserName, ConnId)> {
        self.by_name.get(name).map(|(registered, conn)| (registered, *conn))
    }

    /// Whether `conn` is a known connection.
    pub(super) fn is_known(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Whether `conn` reads the shared stream.
    pub(super) fn is_subscribed(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.subscribed)
    }

    /// Number of users logged in.
    pub(super) fn online(&self) -> usize {
        self.by_name.len()
    }

    /// The names logged in, sorted.
    pub(super) fn names_sorted(&self) -> Vec<UserName> {
        let mut names: Vec<UserName> = self.by_name.iter().map(|(name, _)| name.clone()).collect();
        names.sort();
        names
    }

    /// Every known connection, in ascending order (so outputs about all of them are deterministic).
    pub(super) fn conns(&self) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort_unstable();
        conns
    }
}
