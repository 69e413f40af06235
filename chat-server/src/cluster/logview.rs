//! `chat-cli log show --cluster URLS` and `chat-cli log verify --cluster URLS`: the cluster's log,
//! read from the stream.
//!
//! Both read every batch from the first to the last stored when they start, and apply them to a
//! replica of their own, exactly as an instance does (see [`super::Replica`]). What the replica's
//! router decides is turned into the journal's records (`JOIN`, `SESSION`, `STORE`, `ROOM JOIN`,
//! `LEAVE`, ...), so `show` prints the same lines as for a journal (`crate::logview`), and `verify`
//! checks them by the same rules (sequence numbers contiguous from 1, Lamport stamps increasing along
//! them, no join of a user online, senders online, ...). The cluster adds its own: every batch
//! decodes, and no entry speaks for another instance's connection. Batches ignored as duplicates or
//! from an instance marked down are counted, not violations. A replica uses the router's default
//! settings: instances that ran with other `--grace-ms`, `--history` or room and offline limits may
//! end sessions or drop queued messages at other points than the replay shows.
//!
//! `show` adds a line per account change (`ACCOUNT REGISTER alice`, `ACCOUNT TOKEN bob REFUSED (no account
//! bob)`): the name and the outcome, never a hash. `show --json` prints one object per batch instead:
//! `{"seq", "time_ms", "header", "entries"}` (account changes with their hashes, never a password).

use std::fmt;
use std::io::Write;
use std::time::Instant;

use tokio::sync::mpsc;

use super::accounts::AccountChange;
use super::entry::{Entry, decode_batch};
use super::reader::{self, Delivered};
use super::{Applied, ClusterConfig, Replica, connect, replicated};
use crate::ServerError;
use crate::journal::Record;
use crate::journal::replay::{Replay, ViolationKind};
use crate::logview::{escape, record_line};
use crate::router::{Output, Router, RouterConfig, RouterState};

/// What a read of the cluster's log found.
#[derive(Debug, Default)]
pub struct ClusterReport {
    /// The stream.
    pub stream: String,
    /// Batches read.
    pub batches: u64,
    /// Records the replica derived.
    pub records: u64,
    /// Messages stored.
    pub messages: u64,
    /// Batches ignored (duplicates, from instances marked down): `(stream sequence, why)`.
    pub ignored: Vec<(u64, &'static str)>,
    /// Broken rules: `(stream sequence, what)`.
    pub violations: Vec<(u64, String)>,
}

impl ClusterReport {
    /// Whether no rule is broken.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for ClusterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {}: {} batches, {} records, {} messages: ",
            self.stream, self.batches, self.records, self.messages
        )?;
        match self.violations.len() {
            0 => writeln!(f, "OK")?,
            1 => writeln!(f, "1 violation")?,
            n => writeln!(f, "{n} violations")?,
        }
        for (seq, what) in &self.violations {
            writeln!(f, "  batch at stream sequence {seq}: {what}")?;
        }
        if !self.ignored.is_empty() {
            writeln!(f, "note: {} batches ignored (duplicates, or from instances marked down)", self.ignored.len())?;
        }
        Ok(())
    }
}

/// Reads the whole stream, calling `each` with every batch and the records its application derived.
async fn replay(
    config: &ClusterConfig,
    mut each: impl FnMut(&Delivered, &Applied, &[Record]) -> Result<(), ServerError>,
) -> Result<ClusterReport, ServerError> {
    let link = connect(config, true).await?;
    let last = link.stream.get_info().await.map_err(|e| ServerError::Cluster(e.to_string()))?.state.last_sequence;
    let mut report = ClusterReport { stream: config.stream.clone(), ..ClusterReport::default() };
    if last == 0 {
        return Ok(report);
    }
    let (tx, mut rx) = mpsc::channel(reader::QUEUE);
    let reading = reader::start(link.stream.clone(), config.subject(), 1, tx);
    let mut router = Router::new(replicated(RouterConfig::default()), RouterState::default());
    let mut replica = Replica::new(Instant::now());
    let mut checker = Replay::default();
    let (mut deliveries, mut problems, mut records) = (Vec::new(), Vec::new(), Vec::new());
    while replica.applied() < last {
        let Some(d) = rx.recv().await else { break };
        let rejected = replica.rejected();
        let applied = replica.apply(&mut router, d.seq, d.time_ms, &d.payload);
        report.batches += 1;
        match &applied {
            Applied::Ignored("malformed") => {
                let why = decode_batch(&d.payload).err().map(|e| e.to_string()).unwrap_or_default();
                report.violations.push((d.seq, format!("undecodable batch: {why}")));
            }
            Applied::Ignored(why) => report.ignored.push((d.seq, why)),
            Applied::Batch { .. } if replica.rejected() > rejected => {
                report.violations.push((d.seq, "an entry speaks for another instance's connection".into()));
            }
            Applied::Batch { .. } => {}
        }
        while let Some(output) = router.poll_output() {
            records.extend(record_of(output));
        }
        for record in &records {
            checker.apply(record, &mut deliveries, &mut problems);
            deliveries.clear();
            report.violations.extend(problems.drain(..).map(|p: ViolationKind| (d.seq, p.to_string())));
        }
        report.records += records.len() as u64;
        each(&d, &applied, &records)?;
        records.clear();
    }
    reading.abort();
    report.messages = checker.messages;
    Ok(report)
}

/// The journal record an output of the router stands for, if any.
fn record_of(output: Output) -> Option<Record> {
    Some(match output {
        Output::Store(stored) => Record::Stored(stored),
        Output::Record(record) => record,
        Output::SessionStarted { name, after, .. } => Record::Join { name, after },
        Output::SessionEnded { name, after, reason, .. } => Record::Leave { name, after, reason },
        _ => return None,
    })
}

/// Prints the cluster's log (see the module documentation).
pub async fn show(config: &ClusterConfig, out: &mut impl Write, json: bool) -> Result<ClusterReport, ServerError> {
    replay(config, |d, applied, records| {
        if json {
            let line = match decode_batch(&d.payload) {
                Ok((header, entries)) => serde_json::json!({
                    "seq": d.seq, "time_ms": d.time_ms, "header": header, "entries": entries
                }),
                Err(e) => serde_json::json!({ "seq": d.seq, "time_ms": d.time_ms, "error": e.to_string() }),
            };
            writeln!(out, "{line}")?;
        } else {
            for line in records.iter().filter_map(record_line) {
                writeln!(out, "{line}")?;
            }
            for line in account_lines(&d.payload, applied) {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    })
    .await
}

/// `ACCOUNT REGISTER alice`, `ACCOUNT TOKEN alice REFUSED (no account alice)`, ...: the account changes of
/// a batch and their outcomes (no hash is printed).
fn account_lines(payload: &[u8], applied: &Applied) -> Vec<String> {
    let Applied::Batch { accounts: outcomes, .. } = applied else { return Vec::new() };
    let Ok((_, entries)) = decode_batch(payload) else { return Vec::new() };
    let changes = entries.into_iter().filter_map(|e| if let Entry::Account(c) = e { Some(c) } else { None });
    changes
        .zip(outcomes)
        .map(|(change, outcome)| {
            let what = match change {
                AccountChange::Register { .. } => "REGISTER",
                AccountChange::Password { .. } => "PASSWORD",
                AccountChange::Remove { .. } => "REMOVE",
                AccountChange::Token { .. } => "TOKEN",
            };
            let refused = outcome.as_ref().err().map(|r| format!(" REFUSED ({})", escape(r))).unwrap_or_default();
            format!("ACCOUNT {what} {}{refused}", change.name())
        })
        .collect()
}

/// Checks the cluster's log (see the module documentation).
pub async fn verify(config: &ClusterConfig) -> Result<ClusterReport, ServerError> {
    replay(config, |_, _, _| Ok(())).await
}
