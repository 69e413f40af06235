//! Starting a session: `Login`, `LoginWith` and version 2's `Enter` all end here, once the right to
//! the name is settled (see `auth`).
//!
//! | the name ...                          | outcome                                                      |
//! |---------------------------------------|--------------------------------------------------------------|
//! | breaks the naming rules, or is reserved (`Sistema`) | `Refused { invalid_name }`                      |
//! | has no session                        | a new session: `SessionStarted`, `Record(Session)`, `Welcome` (token, rooms, how many offline messages follow), the offline messages (`Deliver`), `Stream(Joined)` unless quiet, `Subscribe` |
//! | has a session, and `resume` presents its token | the session is resumed (see `resume`)                |
//! | has a session otherwise               | `Refused { name_taken }`                                      |
//!
//! A resume whose session is gone (expired, or never existed) starts a new session if the name is
//! free: its `Welcome` says `resumed: None`, so the client knows it may have missed messages.

use std::time::Instant;

use chat_core::{ErrorCode, UserName};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::commit::Visible;
use super::io::ClusterLogin;
use super::sessions::{LoginOptions, Presented, Session};
use super::{ConnId, MAX_LISTED_NAMES, MAX_WELCOME_NAMES, Output, Router};
use crate::journal::Record;
use crate::protocol::{Credential, Enter, ServerFrame, SessionInfo};

/// The options of a version 1 login: a new, announced session.
pub(super) fn plain() -> LoginOptions {
    LoginOptions::default()
}

/// SHA-256 of a session token: what the server keeps and journals.
pub(super) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Router {
    /// A login without a credential.
    pub(super) fn login(&mut self, now: Instant, conn: ConnId, name: UserName, options: LoginOptions) {
        if self.sessions.name_of(conn).is_some() {
            let message = "already logged in".to_string();
            return self.reply(conn, ServerFrame::Rejected { req: 0, code: ErrorCode::Protocol, message });
        }
        // Names from the wire are only checked for safety: every naming rule applies here.
        let name = match UserName::new(name.as_str()) {
            Ok(name) => name,
            Err(e) => return self.refuse(conn, ErrorCode::InvalidName, e.to_string()),
        };
        if self.open_login_allowed(conn, &name) {
            self.log_in_as(now, conn, name, options);
        }
    }

    /// A login whose right to the name another instance of a cluster settled (see `Input::Admit`).
    pub(super) fn admit(&mut self, now: Instant, admit: ClusterLogin) {
        let (conn, name, options) = self.cluster_login(admit);
        self.login(now, conn, name, options);
    }

    /// A login whose credential an instance of a cluster verified (see `Input::AdmitAccount`).
    pub(super) fn admit_account(&mut self, now: Instant, admit: ClusterLogin) {
        let (conn, name, options) = self.cluster_login(admit);
        if self.sessions.name_of(conn).is_some() {
            let message = "already logged in".to_string();
            return self.reply(conn, ServerFrame::Rejected { req: 0, code: ErrorCode::Protocol, message });
        }
        match self.registered_as(&name) {
            Some(registered) => self.log_in_as(now, conn, registered, options),
            // The account was removed between the check and this entry.
            None => self.refuse(conn, ErrorCode::AuthFailed, super::auth::AUTH_FAILED.into()),
        }
    }

    /// A cluster login's connection (opened with its flags), name and options.
    fn cluster_login(&mut self, admit: ClusterLogin) -> (ConnId, UserName, LoginOptions) {
        let conn = admit.conn;
        self.sessions.open(conn);
        if admit.legacy {
            self.sessions.set_legacy(conn);
        } else if !admit.resumable {
            self.sessions.set_unresumable(conn);
        }
        let resume = admit.resume.map(|(hash, cursor)| Presented { hash, cursor, token: String::new() });
        (conn, admit.name, LoginOptions { resume, quiet: admit.quiet, minted: Some(admit.token) })
    }

    /// A version 2 login.
    pub(super) fn enter(&mut self, now: Instant, conn: ConnId, enter: Enter) {
        let options =
            LoginOptions { resume: enter.resume.map(Presented::from_resume), quiet: enter.quiet, minted: None };
        match enter.credential {
            None => self.login(now, conn, enter.name, options),
            Some(credential) => self.login_with(conn, enter.name, credential, options),
        }
    }

    /// A login with a credential: the shell checks it off the owner loop (see `auth`).
    pub(super) fn login_with(&mut self, conn: ConnId, name: UserName, credential: Credential, options: LoginOptions) {
        if self.sessions.name_of(conn).is_some() {
            let message = "already logged in".to_string();
            return self.reply(conn, ServerFrame::Rejected { req: 0, code: ErrorCode::Protocol, message });
        }
        self.sessions.set_pending(conn, options);
        self.outputs.push_back(Output::Authenticate { conn, name, credential });
    }

    /// Starts or resumes the session of `name` on `conn` (its right to the name is settled).
    pub(super) fn log_in_as(&mut self, now: Instant, conn: ConnId, name: UserName, options: LoginOptions) {
        if self.refuse_reserved(conn, &name) {
            return;
        }
        if let Some((taken, session)) = self.sessions.session(&name) {
            let (taken, token) = (taken.clone(), session.token);
            if let Some(resume) = options.resume.filter(|r| r.hash == token) {
                return self.resume(now, conn, taken, resume);
            }
            let message = if taken == name {
                format!("the name {name} is already taken by a user online")
            } else {
                format!("the name {name} is too much like {taken}, a user online")
            };
            return self.refuse(conn, ErrorCode::NameTaken, message);
        }
        self.start_session(conn, name, options.quiet, options.minted);
    }

    /// A new session.
    fn start_session(&mut self, conn: ConnId, name: UserName, quiet: bool, minted: Option<[u8; 32]>) {
        let (token, hash) = match minted {
            // The instance that accepted the login keeps the token and puts it in the `Welcome`.
            Some(hash) => (String::new(), hash),
            None => self.new_token(),
        };
        let after = self.last_seq;
        let backlog = self.offline.take(&name);
        self.offline.know(&name);
        let mut session = Session::new(Some(conn), hash, after, quiet);
        session.backlog = backlog.messages.clone();
        self.sessions.start(name.clone(), session);
        self.logged_in(conn);
        self.outputs.push_back(Output::SessionStarted { conn, name: name.clone(), after });
        self.outputs.push_back(Output::Record(Record::Session { name: name.clone(), token: hash, quiet }));
        let session = SessionInfo {
            token,
            grace_ms: self.config.grace.as_millis() as u64,
            rooms: self.rooms.of(&name),
            resumed: None,
            offline: backlog.messages.len() as u64,
        };
        self.welcome(conn, &name, session);
        if backlog.dropped > 0 {
            let text = format!(
                "{} older messages kept for you while you were offline were dropped (the server keeps at most {} per user)",
                backlog.dropped, self.config.offline.messages
            );
            self.reply(conn, ServerFrame::Notice { text });
        }
        for m in backlog.messages {
            let seq = m.id.seq;
            self.visible(Visible::Deliver { conns: vec![conn], frame: ServerFrame::Message(m), seq });
        }
        // The notice goes to the stream before the newcomer subscribes to it: it never sees its own.
        if !quiet {
            self.announce(ServerFrame::Joined { name });
        }
        self.subscribe(conn);
    }

    /// The `Welcome` for a session.
    pub(super) fn welcome(&mut self, conn: ConnId, name: &UserName, session: SessionInfo) {
        let online = self.sessions.names_sorted_upto(MAX_WELCOME_NAMES);
        let heartbeat_ms = self.config.heartbeat_ms;
        self.reply(conn, ServerFrame::Welcome { name: name.clone(), online, heartbeat_ms, session });
        let total = self.sessions.visible_count();
        if total > MAX_WELCOME_NAMES {
            let text = format!(
                "{total} people are online: the list above shows {MAX_WELCOME_NAMES} of them (/who lists up to {MAX_LISTED_NAMES})"
            );
            self.reply(conn, ServerFrame::Notice { text });
        }
    }

    /// From now on `conn` reads everything broadcast (the shared stream, or one by one for version 1).
    pub(super) fn subscribe(&mut self, conn: ConnId) {
        self.sessions.subscribe(conn);
        self.visible(Visible::Subscribe { conn });
    }

    /// Refuses a login and closes the connection after the refusal.
    pub(super) fn refuse(&mut self, conn: ConnId, code: ErrorCode, message: String) {
        self.reply(conn, ServerFrame::Refused { code, message });
        self.gone(conn);
        self.sessions.forget(conn);
        self.visible(Visible::Close { conn });
    }

    /// A fresh session token (64 hex digits from the seeded generator) and its hash.
    fn new_token(&mut self) -> (String, [u8; 32]) {
        let mut bytes = [0u8; 32];
        self.rng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hash = token_hash(&token);
        (token, hash)
    }
}
