//! The committed watermark: nothing a client sees runs ahead of the log.
//!
//! With a journal, an accepted message is stored (`Store`, to the journal at once) but everything a
//! client would see from then on (its `Sent`, the message itself, and every later reply, notice or
//! subscription, so the relative order is kept) waits in `held`, tagged with the highest sequence
//! number accepted so far, until the journal reports that sequence number durable (`Durable`, the
//! journal's watermark). So a `Sent` means durable, and nobody ever receives a message that a restart
//! forgets (as a Kafka high-watermark or an etcd apply).
//!
//! | input                  | effect                                                                     |
//! |------------------------|----------------------------------------------------------------------------|
//! | an effect, nothing pending | released at once                                                        |
//! | an effect, a message not yet durable | held (tagged with the last accepted sequence number)         |
//! | `Durable { upto }`     | releases, in order, everything tagged `<= upto`                             |
//! | `StorageFailed`        | held `Sent` become `Rejected { storage_unavailable }`, held messages are dropped (never delivered), the rest released; later sends are refused the same way |
//!
//! Without a journal every effect is released at once.

use std::collections::VecDeque;

use chat_core::ErrorCode;

use super::{ConnId, Output, Router};
use crate::protocol::ServerFrame;

/// An effect a client will see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Visible {
    /// A frame for one connection.
    Reply { conn: ConnId, frame: ServerFrame },
    /// A message for a list of connections.
    Deliver { conns: Vec<ConnId>, frame: ServerFrame, seq: u64 },
    /// A frame for the shared stream.
    Stream { frame: ServerFrame, seq: u64 },
    /// A connection starts reading the stream.
    Subscribe { conn: ConnId },
    /// A connection is closed after what is queued for it.
    Close { conn: ConnId },
}

/// The committed-watermark state.
#[derive(Debug)]
pub(super) struct Commit {
    /// Whether effects wait for durability (a journal is kept).
    journaled: bool,
    /// Highest sequence number the journal reported durable.
    durable: u64,
    /// Effects waiting, with the sequence number that must be durable first.
    held: VecDeque<(u64, Visible)>,
    /// Why storage failed, once it has.
    failed: Option<String>,
}

impl Commit {
    /// `journaled`: effects wait for `Durable`; `durable`: what recovery found on disk.
    pub(super) fn new(journaled: bool, durable: u64) -> Self {
        Commit { journaled, durable, held: VecDeque::new(), failed: None }
    }

    /// Why storage failed, if it did.
    pub(super) fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Effects waiting for durability.
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }
}

impl Router {
    /// Releases `effect` now, or holds it until the last accepted message is durable.
    pub(super) fn visible(&mut self, effect: Visible) {
        let c = &self.commit;
        if !c.journaled || c.failed.is_some() || (c.held.is_empty() && c.durable >= self.last_seq) {
            self.release(effect);
        } else {
            let tag = self.last_seq;
            self.commit.held.push_back((tag, effect));
        }
    }

    /// The journal made everything up to `upto` durable.
    pub(super) fn durable(&mut self, upto: u64) {
        self.commit.durable = self.commit.durable.max(upto);
        while let Some((tag, _)) = self.commit.held.front() {
            if *tag > self.commit.durable {
                break;
            }
            if let Some((_, effect)) = self.commit.held.pop_front() {
                self.release(effect);
            }
        }
    }

    /// The journal stopped: nothing more becomes durable. See the module documentation.
    pub(super) fn storage_failed(&mut self, reason: String) {
        if self.commit.failed.is_some() {
            return;
        }
        let message = format!("the server cannot store messages: {reason}");
        self.commit.failed = Some(message.clone());
        self.refuse_held(&message);
        for (_, effect) in std::mem::take(&mut self.commit.held) {
            match effect {
                Visible::Reply { conn, frame: ServerFrame::Sent { req, .. } } => {
                    let code = ErrorCode::StorageUnavailable;
                    self.release(Visible::Reply {
                        conn,
                        frame: ServerFrame::Rejected { req, code, message: message.clone() },
                    });
                }
                Visible::Deliver { .. } | Visible::Stream { seq: 1.., .. } => {}
                other => self.release(other),
            }
        }
    }

    /// Turns an effect into the shell's output, keeping the publishing policy's account.
    fn release(&mut self, effect: Visible) {
        let output = match effect {
            Visible::Reply { conn, frame } => Output::Reply { conn, frame, early: self.publisher.early() },
            Visible::Deliver { conns, frame, seq } => {
                Output::Deliver { conns, frame, seq, early: self.publisher.early() }
            }
            Visible::Stream { frame, seq } => {
                if seq > 0 {
                    self.publisher.appended_message();
                } else {
                    self.publisher.appended_notice();
                }
                if !self.legacy_readers.is_empty() {
                    // Version 1 connections do not read the stream: they get its frames converted.
                    let conns = self.legacy_readers.iter().copied().collect();
                    let early = self.publisher.early();
                    self.outputs.push_back(Output::Stream { frame: frame.clone(), seq });
                    Output::Deliver { conns, frame, seq, early }
                } else {
                    Output::Stream { frame, seq }
                }
            }
            Visible::Subscribe { conn } if self.sessions.is_legacy(conn) => {
                self.legacy_readers.insert(conn);
                return;
            }
            Visible::Subscribe { conn } => Output::Subscribe { conn },
            Visible::Close { conn } => Output::Close { conn },
        };
        self.outputs.push_back(output);
    }
}
