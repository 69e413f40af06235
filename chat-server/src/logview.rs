//! Reading the journal for people: `chat-cli log show DIR` ([`show`]) and `chat-cli log verify DIR`
//! ([`verify`]). Both only read `DIR/journal.log` (never truncate it), so they are safe on the log of
//! a running server: they read up to the length the file had when opened.
//!
//! # `show`: one line per record, `Consumed` expanded to one line per delivery
//!
//! | record                      | line(s)                                                             |
//! |-----------------------------|---------------------------------------------------------------------|
//! | `Start`                     | `START after 41`                                                    |
//! | `Join`                      | `JOIN bob after 41`                                                 |
//! | `Store` (broadcast)         | `STORE [12] BROADCAST FROM alice TO ALL: hi`                        |
//! | `Store` (unicast)           | `STORE [13] UNICAST FROM alice TO bob: hi`                          |
//! | `Store` (multicast)         | `STORE [14] MULTICAST FROM alice TO bob,carol: hi`                  |
//! | `Consumed`                  | per user, per message it covers: `CONSUME [12] BROADCAST BY bob FROM alice: hi` (none if it covers nothing) |
//! | `Leave`                     | `LEAVE bob after 57 (quit)`                                         |
//!
//! `[n]` is the message's Lamport counter; no sequence-number prefix is printed (`after N` carries it).
//! Bodies are escaped so a record stays on one line: `\` → `\\`, newline → `\n`, carriage return →
//! `\r`, tab → `\t`, other control characters → `\u{..}`.
//!
//! `show --json` ([`show_json`]) prints one JSON object per record instead, with every field.
//!
//! # `verify`: the rules checked
//!
//! Every record's checksum (corruption before the tail is a [`Violation`] with its byte offset; a torn
//! tail is only a warning, [`VerifyReport::torn_tail`]); stored sequence numbers contiguous from 1 with
//! ID `(0, seq)`; Lamport counters strictly increasing along them; `START`/`JOIN`/`LEAVE` `after` equal
//! to the highest stored sequence number; no `JOIN` of an online user nor `LEAVE` of an offline one;
//! senders and named recipients online when a message is stored; watermarks only for online users,
//! never backwards (no duplicate consumption) and never beyond the highest stored sequence number
//! (no consumption of an unproduced message). Deliveries are derived from the watermarks and the
//! intended recipients (see `crate::journal::record`), so each one matches a produced message and an intended
//! recipient, and each recipient's deliveries follow the server order, by construction.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use chat_core::{ChatMessage, Recipients};

use crate::ServerError;
use crate::journal::Record;
use crate::journal::replay::{Delivery, Replay};
use crate::journal::{Item, Opened, RecordReader, TornTail, journal_path};

pub use crate::journal::replay::ViolationKind;

/// What [`show`] printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShowSummary {
    /// Valid records read.
    pub records: u64,
    /// Lines printed.
    pub lines: u64,
    /// A damaged tail after the last whole record (the server truncates it on its next start).
    pub torn_tail: Option<TornTail>,
}

/// Prints the journal in `dir`, one line per record, with each `Consumed` record expanded to one
/// `CONSUME` line per delivery it covers (format in the module docs).
///
/// Fails with [`ServerError::CorruptJournal`] (after printing every record before it) on corruption
/// before the tail, and with [`ServerError::Io`] if the file cannot be read or `out` written.
pub fn show(dir: &Path, out: &mut impl Write) -> Result<ShowSummary, ServerError> {
    show_as(dir, out, false)
}

/// Prints the journal in `dir` as JSON lines: one object per record, `{"offset": N, "record":
/// {"<Kind>": {fields}}}` with every field of the record (see `crate::journal::record`);
/// `Consumed` records are printed as they are, not expanded. Fails as [`show`].
pub fn show_json(dir: &Path, out: &mut impl Write) -> Result<ShowSummary, ServerError> {
    show_as(dir, out, true)
}

fn show_as(dir: &Path, out: &mut impl Write, json: bool) -> Result<ShowSummary, ServerError> {
    let path = journal_path(dir);
    let mut summary = ShowSummary::default();
    let mut reader = match RecordReader::open(File::open(&path)?)? {
        Opened::Reader(reader) => reader,
        Opened::TornHeader { len } => {
            summary.torn_tail =
                (len > 0).then(|| TornTail { offset: 0, bytes: len, reason: "short file header".into() });
            return Ok(summary);
        }
        Opened::BadHeader { found } => {
            let reason = ViolationKind::BadHeader { found }.to_string();
            return Err(ServerError::CorruptJournal { path, offset: 0, reason });
        }
    };
    let mut replay = Replay::default();
    let mut deliveries = Vec::new();
    let mut ignored = Vec::new();
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Record { record, offset } if json => {
                summary.records += 1;
                let line = serde_json::json!({ "offset": offset, "record": record });
                writeln!(out, "{line}")?;
                summary.lines += 1;
            }
            Item::Record { record, .. } => {
                summary.records += 1;
                replay.apply(&record, &mut deliveries, &mut ignored);
                ignored.clear();
                if let Some(line) = record_line(&record) {
                    writeln!(out, "{line}")?;
                    summary.lines += 1;
                }
                for Delivery { user, message } in deliveries.drain(..) {
                    let kind = kind_upper(&message.recipients);
                    writeln!(
                        out,
                        "CONSUME [{}] {kind} BY {user} FROM {}: {}",
                        lamport(&message),
                        message.sender,
                        escape(&message.body)
                    )?;
                    summary.lines += 1;
                }
            }
            Item::Bad { offset, reason, resume: Some(next), .. } => {
                let reason = ViolationKind::Corrupt { reason, resume: next }.to_string();
                return Err(ServerError::CorruptJournal { path, offset, reason });
            }
            Item::Bad { offset, reason, resume: None, end } => {
                summary.torn_tail = Some(TornTail { offset, bytes: end - offset, reason });
            }
        }
    }
    Ok(summary)
}

/// The line of a record (`None` for `Consumed`, which is shown as its deliveries).
pub(crate) fn record_line(record: &Record) -> Option<String> {
    Some(match record {
        Record::Start { after } => format!("START after {after}"),
        Record::Join { name, after } => format!("JOIN {name} after {after}"),
        Record::Leave { name, after, reason } => format!("LEAVE {name} after {after} ({})", escape(reason)),
        Record::Store { message } => store_line(&message.clone().into()),
        Record::Stored(stored) => store_line(&stored.message),
        Record::Session { name, quiet, .. } => format!("SESSION {name}{}", if *quiet { " quiet" } else { "" }),
        Record::Kept { name, after } => format!("KEPT {name} after {after}"),
        Record::RoomJoin { room, name, after } => format!("ROOM JOIN {room} {name} after {after}"),
        Record::RoomPart { room, name, after } => format!("ROOM PART {room} {name} after {after}"),
        Record::Consumed { .. } => return None,
    })
}

/// `STORE [lamport] KIND FROM sender TO recipients: body` (recipients: `ALL`, names, or the room).
fn store_line(message: &ChatMessage) -> String {
    let to = match &message.recipients {
        Recipients::Broadcast => "ALL".to_owned(),
        Recipients::Room(room) => room.to_string(),
        named => named.names().iter().map(|n| n.as_str()).collect::<Vec<_>>().join(","),
    };
    let kind = kind_upper(&message.recipients);
    format!("STORE [{}] {kind} FROM {} TO {to}: {}", lamport(message), message.sender, escape(&message.body))
}

fn lamport(message: &ChatMessage) -> u64 {
    message.lamport.counter
}

fn kind_upper(recipients: &Recipients) -> &'static str {
    match recipients {
        Recipients::Broadcast => "BROADCAST",
        Recipients::Unicast(_) => "UNICAST",
        Recipients::Multicast(_) => "MULTICAST",
        Recipients::Room(_) => "ROOM",
    }
}

/// Escapes `text` so it fits on one line (see the module docs).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// One broken rule, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Byte offset of the offending record (or of the corrupt bytes).
    pub offset: u64,
    /// Index (from 0) of the offending valid record; for corrupt bytes, the index the next valid
    /// record gets.
    pub record: u64,
    /// What is wrong.
    pub kind: ViolationKind,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ViolationKind::Corrupt { .. } | ViolationKind::BadHeader { .. } => {
                write!(f, "byte {} (before record #{}): {}", self.offset, self.record, self.kind)
            }
            _ => write!(f, "record #{} at byte {}: {}", self.record, self.offset, self.kind),
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Valid records read.
    pub records: u64,
    /// `Store` records (messages produced).
    pub messages: u64,
    /// Deliveries covered by the `Consumed` watermarks.
    pub deliveries: u64,
    /// Every broken rule, in file order.
    pub violations: Vec<Violation>,
    /// A damaged tail (a warning, not a violation: the server truncates it on start).
    pub torn_tail: Option<TornTail>,
}

impl VerifyReport {
    /// Whether no rule is broken (a torn tail is allowed).
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "journal: {} records, {} messages, {} deliveries: ", self.records, self.messages, self.deliveries)?;
        match self.violations.len() {
            0 => writeln!(f, "OK")?,
            1 => writeln!(f, "1 violation")?,
            n => writeln!(f, "{n} violations")?,
        }
        for v in &self.violations {
            writeln!(f, "  {v}")?;
        }
        if let Some(t) = &self.torn_tail {
            writeln!(
                f,
                "warning: torn tail at byte {}: {} bytes ({}); the server truncates it on its next start",
                t.offset, t.bytes, t.reason
            )?;
        }
        Ok(())
    }
}

/// Checks the journal in `dir` against the rules in the module docs. Broken rules are collected in
/// the report (checking resumes after corrupt bytes); only failing to read the file is an `Err`.
pub fn verify(dir: &Path) -> Result<VerifyReport, ServerError> {
    let mut report = VerifyReport::default();
    let mut reader = match RecordReader::open(File::open(journal_path(dir))?)? {
        Opened::Reader(reader) => reader,
        Opened::TornHeader { len } => {
            report.torn_tail =
                (len > 0).then(|| TornTail { offset: 0, bytes: len, reason: "short file header".into() });
            return Ok(report);
        }
        Opened::BadHeader { found } => {
            report.violations.push(Violation { offset: 0, record: 0, kind: ViolationKind::BadHeader { found } });
            return Ok(report);
        }
    };
    let mut replay = Replay::default();
    let mut deliveries = Vec::new();
    let mut problems = Vec::new();
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Record { offset, record } => {
                replay.apply(&record, &mut deliveries, &mut problems);
                deliveries.clear();
                let index = report.records;
                report.violations.extend(problems.drain(..).map(|kind| Violation { offset, record: index, kind }));
                report.records += 1;
            }
            Item::Bad { offset, reason, resume: Some(resume), .. } => {
                let kind = ViolationKind::Corrupt { reason, resume };
                report.violations.push(Violation { offset, record: report.records, kind });
            }
            Item::Bad { offset, reason, resume: None, end } => {
                report.torn_tail = Some(TornTail { offset, bytes: end - offset, reason });
            }
        }
    }
    report.messages = replay.messages;
    report.deliveries = replay.deliveries;
    if report.is_ok() {
        tracing::debug!(records = report.records, deliveries = report.deliveries, "journal verified");
    } else {
        tracing::warn!(violations = report.violations.len(), "journal has violations");
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
