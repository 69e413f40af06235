//! Who may log in under which name: open logins, registered names, credentials, and slowing down
//! whoever keeps guessing.
//!
//! | input                                        | open server (`--auth open`)          | `--auth accounts`                 |
//! |----------------------------------------------|--------------------------------------|-----------------------------------|
//! | `Login { name }`, name not registered        | logged in                            | `Refused { auth_failed }`         |
//! | `Login { name }`, name registered            | `Refused { name_taken }`             | `Refused { auth_failed }`         |
//! | `LoginWith { name, credential }`             | `Authenticate` (the shell checks it off the owner loop), then `Authenticated` | the same |
//! | `Authenticated` with the registered name     | logged in under it                   | logged in under it                |
//! | `Authenticated` with none                    | `Refused { auth_failed }`, the same for an unknown name and a wrong secret, after a delay that grows with the failures of that address | the same |
//! | any login under a [`RESERVED_NAMES`] name (any case, look-alikes) | `Refused { invalid_name }` | the same |
//!
//! The delay: none for the first [`FREE_FAILURES`] failures of an address within [`FAILURE_MEMORY`],
//! then 250 ms doubling per failure up to [`MAX_FAILURE_DELAY`]. The set of registered names comes from
//! the shell (`Registered`), which reads the accounts file again when it changes (in cluster mode: the
//! replica, when an `Account` entry of the shared log changes them; a credential its instance verified
//! arrives as `AdmitAccount`, see `login`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chat_core::{ErrorCode, NameMap, UserName};

use super::{ConnId, Router};

/// Failures an address may have before its refusals are delayed.
pub const FREE_FAILURES: u32 = 3;
/// Longest delay of a refusal.
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(8);
/// How long a failure is remembered.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(600);
/// Addresses whose failures are remembered at once (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 65_536;

/// Whether logging in needs a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Anyone may log in under any name that is not registered (and under a registered one with its
    /// credential).
    #[default]
    Open,
    /// Every login needs the password or a token of a registered account.
    Accounts,
}

/// The authentication state.
#[derive(Debug, Default)]
pub(super) struct Auth {
    mode: AuthMode,
    registered: NameMap<()>,
    /// Per address: failures, and when the last one happened.
    failures: HashMap<IpAddr, (u32, Instant)>,
    /// Addresses in the order of their last failure (for forgetting), with that time.
    order: VecDeque<(Instant, IpAddr)>,
    /// Refusals held back until their delay has passed.
    delayed: VecDeque<(Instant, ConnId)>,
}

impl Auth {
    pub(super) fn new(mode: AuthMode) -> Self {
        Auth { mode, ..Auth::default() }
    }

    /// When the next delayed refusal is due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.delayed.iter().map(|(at, _)| *at).min()
    }

    /// Records a failure of `addr` at `now`; returns how long its refusal waits.
    fn fail(&mut self, now: Instant, addr: IpAddr) -> Duration {
        while self.order.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > FAILURE_MEMORY)
            || self.order.len() >= MAX_REMEMBERED
        {
            if let Some((t, a)) = self.order.pop_front()
                && self.failures.get(&a).is_some_and(|(_, last)| *last == t)
            {
                self.failures.remove(&a);
            }
        }
        let entry = self.failures.entry(addr).or_insert((0, now));
        if now.saturating_duration_since(entry.1) > FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        self.order.push_back((now, addr));
        match entry.0.checked_sub(FREE_FAILURES + 1) {
            None => Duration::ZERO,
            Some(extra) => (Duration::from_millis(250) * 2u32.saturating_pow(extra.min(8))).min(MAX_FAILURE_DELAY),
        }
    }
}

/// Names nobody may log in under (any case, look-alikes): the text protocol's notices come from
/// `Sistema`, so a user by that name could impersonate the server there.
pub const RESERVED_NAMES: [&str; 1] = [crate::text::SYSTEM_NAME];

/// Whether `name` is one of the [`RESERVED_NAMES`] (the same name: any case, look-alikes).
pub fn is_reserved(name: &UserName) -> bool {
    // The reserved names' keys are computed once, not at every login.
    static RESERVED_KEYS: std::sync::OnceLock<Vec<chat_core::NameKey>> = std::sync::OnceLock::new();
    let reserved = RESERVED_KEYS
        .get_or_init(|| RESERVED_NAMES.iter().filter_map(|r| UserName::new(*r).ok()).flat_map(|r| r.keys()).collect());
    name.keys().iter().any(|k| reserved.contains(k))
}

/// The refusal for a failed credential: the same words whatever failed.
pub(super) const AUTH_FAILED: &str = "wrong name, password or token";

impl Router {
    /// Refuses a login under a reserved name; true if it did.
    pub(super) fn refuse_reserved(&mut self, conn: ConnId, name: &UserName) -> bool {
        if !is_reserved(name) {
            return false;
        }
        let message = format!("the name {name} is reserved for the server's notices");
        self.refuse(conn, ErrorCode::InvalidName, message);
        true
    }

    /// Whether a plain `Login` for `name` may go on; refuses it otherwise.
    pub(super) fn open_login_allowed(&mut self, conn: ConnId, name: &UserName) -> bool {
        if self.auth.mode == AuthMode::Accounts {
            let message = "this server requires a password or token: log in with one".to_string();
            self.refuse(conn, ErrorCode::AuthFailed, message);
            return false;
        }
        if let Some(registered) = self.auth.registered.find(name) {
            let message = format!("the name {registered} is registered: log in with its password or token");
            self.refuse(conn, ErrorCode::NameTaken, message);
            return false;
        }
        true
    }

    /// The shell's verdict on a credential: the registered name it proves, or none.
    pub(super) fn authenticated(&mut self, now: Instant, conn: ConnId, name: Option<UserName>) {
        if !self.sessions.is_known(conn) {
            return; // gone meanwhile
        }
        match name {
            Some(name) => {
                let options = self.sessions.take_pending(conn);
                self.log_in_as(now, conn, name, options)
            }
            None => {
                let delay = match self.admission_addr(conn) {
                    Some(addr) => self.auth.fail(now, addr),
                    None => Duration::ZERO,
                };
                if delay.is_zero() {
                    self.refuse(conn, ErrorCode::AuthFailed, AUTH_FAILED.into());
                } else {
                    self.auth.delayed.push_back((now + delay, conn));
                }
            }
        }
    }

    /// Sends the refusals whose delay has passed.
    pub(super) fn release_refusals(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.auth.delayed.drain(..).partition(|(at, _)| *at <= now);
        self.auth.delayed = later.into();
        for (_, conn) in due {
            if self.sessions.is_known(conn) {
                self.refuse(conn, ErrorCode::AuthFailed, AUTH_FAILED.into());
            }
        }
    }

    /// The registered name (display form) that is the same name as `name`, if any.
    pub(super) fn registered_as(&self, name: &UserName) -> Option<UserName> {
        self.auth.registered.find(name).cloned()
    }

    /// The registered names, as read from the accounts file.
    pub(super) fn registered(&mut self, names: Vec<UserName>) {
        // Account holders are known users: messages to them wait while they are offline.
        self.offline.accounts(&names);
        let mut registered = NameMap::default();
        for name in names {
            let _ = registered.insert(name, ());
        }
        self.auth.registered = registered;
    }
}
