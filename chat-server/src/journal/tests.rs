//! Journal tests: round trip, torn tails, corruption, watermarks, fsync policies, and a model-based proptest.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chat_core::{ChatMessage, MessageId, NodeId, Recipients, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::logview;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn name(s: &str) -> UserName {
    ok(UserName::new(s))
}

fn msg(seq: u64, lamport: u64, sender: &str, recipients: Recipients) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: name(sender),
        recipients,
        body: format!("m{seq}"),
        lamport: Timestamp::new(lamport, NodeId::SERVER),
        time: 0,
    }
}

fn config(dir: &Path, fsync: FsyncPolicy, history: usize) -> JournalConfig {
    JournalConfig { dir: dir.to_path_buf(), fsync, history, ..JournalConfig::default() }
}

/// Every record of the journal in `dir` with its offset (panics on any damage).
fn records(dir: &Path) -> Vec<(u64, Record)> {
    let Opened::Reader(mut reader) = ok(RecordReader::open(ok(File::open(journal_path(dir))))) else {
        panic!("bad header");
    };
    let mut out = Vec::new();
    while let Some(item) = ok(reader.next_item()) {
        match item {
            Item::Record { offset, record } => out.push((offset, record)),
            Item::Bad { offset, reason, .. } => panic!("bad record at {offset}: {reason}"),
        }
    }
    out
}

/// Where the records of the journal in `dir` end (preallocated zeros may follow).
fn records_end(dir: &Path) -> u64 {
    let Opened::Reader(mut reader) = ok(RecordReader::open(ok(File::open(journal_path(dir))))) else {
        panic!("bad header");
    };
    while let Some(item) = ok(reader.next_item()) {
        assert!(matches!(item, Item::Record { .. }), "{item:?}");
    }
    reader.records_end()
}

/// Records `input` and ends the turn at once, as the owner does (one `write`).
fn put(journal: &mut Journal, input: JournalInput) {
    ok(journal.record(input));
    ok(journal.end_turn());
}

/// Waits (up to 10 s) until the journal's durable watermark reaches `upto`, feeding it what the
/// sync thread reports as the owner does; `false` if the sync thread stopped first.
async fn wait_durable(journal: &mut Journal, upto: u64) -> bool {
    let mut synced = journal.synced();
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = *synced.borrow_and_update();
            ok(journal.handle_synced(s));
            if journal.durable() >= upto {
                return true;
            }
            if synced.changed().await.is_err() {
                return false;
            }
        }
    });
    ok(reached.await.map_err(|_| "timeout"))
}

/// Opens a journal in `dir` and stores `n` broadcasts from `alice` (seq 1..=n, Lamport 10+seq), then closes.
async fn write_stores(dir: &Path, n: u64) {
    let (mut journal, _) = ok(Journal::open(config(dir, FsyncPolicy::EveryBatch, 10)));
    let mark = Arc::new(AtomicU64::new(0));
    put(&mut journal, JournalInput::Join { name: name("alice"), after: 0, mark });
    for seq in 1..=n {
        put(&mut journal, JournalInput::Store(Stored::plain(msg(seq, 10 + seq, "alice", Recipients::Broadcast))));
    }
    ok(journal.close().await);
}

#[tokio::test]
async fn reopen_recovers_seq_lamport_history_and_appends_a_start() {
    let dir = ok(tempfile::tempdir());
    let (mut journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 3)));
    assert_eq!(rec, Recovered::default());
    let bob_mark = Arc::new(AtomicU64::new(0));
    put(&mut journal, JournalInput::Join { name: name("alice"), after: 0, mark: Arc::new(AtomicU64::new(0)) });
    put(&mut journal, JournalInput::Join { name: name("bob"), after: 0, mark: Arc::clone(&bob_mark) });
    for seq in 1..=5 {
        put(&mut journal, JournalInput::Store(Stored::plain(msg(seq, 2 * seq, "alice", Recipients::Broadcast))));
    }
    // Batches follow the load (no fixed window): wait for the stores, so that bob's watermark is
    // written just before his leave, whatever the batching.
    assert!(wait_durable(&mut journal, 5).await, "the stores became durable");
    bob_mark.store(4, Ordering::Release);
    put(&mut journal, JournalInput::Leave { name: name("bob"), after: 5, reason: "quit".into() });
    ok(journal.close().await);

    let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 3)));
    ok(journal.close().await);
    assert_eq!(rec.state.last_seq, 5);
    assert_eq!(rec.state.lamport, 10);
    assert_eq!(rec.state.history.iter().map(|m| m.id.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(rec.truncated_bytes, 0);
    // Start, 2 joins, 5 stores, bob's final watermark, leave.
    assert_eq!(rec.records, 10);
    let all: Vec<Record> = records(dir.path()).into_iter().map(|(_, r)| r).collect();
    assert_eq!(all[0], Record::Start { after: 0 });
    assert_eq!(all[8], Record::Consumed { marks: vec![(name("bob"), 4)] });
    assert_eq!(all[10], Record::Start { after: 5 });
    let report = ok(logview::verify(dir.path()));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.deliveries, 4);
}

#[tokio::test]
async fn torn_tail_is_truncated_to_the_last_whole_record() {
    let dir = ok(tempfile::tempdir());
    write_stores(dir.path(), 6).await;
    let path = journal_path(dir.path());
    let len = records_end(dir.path());
    let last = records(dir.path()).last().map(|(offset, _)| *offset).unwrap_or_default();
    ok(ok(OpenOptions::new().write(true).open(&path)).set_len(len - 3));

    let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)));
    ok(journal.close().await);
    assert_eq!(rec.truncated_bytes, len - 3 - last);
    assert_eq!(rec.state.last_seq, 5);
    assert_eq!(rec.state.lamport, 15);
    let report = ok(logview::verify(dir.path()));
    assert!(report.is_ok() && report.torn_tail.is_none(), "{report}");
    assert_eq!(records(dir.path()).last().map(|(_, r)| r.clone()), Some(Record::Start { after: 5 }));
}

#[tokio::test]
async fn appended_garbage_is_truncated() {
    let dir = ok(tempfile::tempdir());
    write_stores(dir.path(), 4).await;
    let path = journal_path(dir.path());
    // Without preallocated zeros after it: the garbage follows the last record directly.
    let len = records_end(dir.path());
    ok(ok(OpenOptions::new().write(true).open(&path)).set_len(len));
    // Deterministic pseudo-random garbage (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: Vec<u8> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    ok(ok(OpenOptions::new().append(true).open(&path)).write_all(&garbage));

    let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)));
    ok(journal.close().await);
    assert_eq!(rec.truncated_bytes, 5000);
    assert_eq!(rec.state.last_seq, 4);
    assert!(ok(std::fs::metadata(&path)).len() > len);
    assert!(ok(logview::verify(dir.path())).is_ok());
}

#[tokio::test]
async fn torn_header_is_rewritten() {
    let dir = ok(tempfile::tempdir());
    ok(std::fs::write(journal_path(dir.path()), b"DCHT"));
    let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)));
    ok(journal.close().await);
    assert_eq!(rec.truncated_bytes, 4);
    assert_eq!(records(dir.path()), [(HEADER_LEN, Record::Start { after: 0 })]);
}

#[tokio::test]
async fn corruption_in_the_middle_refuses_to_open() {
    let dir = ok(tempfile::tempdir());
    write_stores(dir.path(), 6).await;
    let path = journal_path(dir.path());
    let offsets = records(dir.path());
    let (victim, _) = offsets[3]; // Store seq 2
    let mut bytes = ok(std::fs::read(&path));
    bytes[victim as usize + FRAME_HEADER_LEN + 3] ^= 0x01;
    ok(std::fs::write(&path, &bytes));

    match Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)) {
        Err(ServerError::CorruptJournal { path: p, offset, reason }) => {
            assert_eq!((p, offset), (path.clone(), victim));
            assert!(reason.contains("checksum") && reason.contains(&offsets[4].0.to_string()), "{reason}");
        }
        other => panic!("expected CorruptJournal, got {:?}", other.map(|(_, r)| r)),
    }
    // Nothing was truncated or appended.
    assert_eq!(ok(std::fs::read(&path)), bytes);
    let report = ok(logview::verify(dir.path()));
    assert!(matches!(report.violations[0].kind, logview::ViolationKind::Corrupt { .. }));
    assert_eq!(report.violations[0].offset, victim);

    // A bad length field (over the limit) in the middle is corruption too.
    let mut bytes2 = ok(std::fs::read(&path));
    bytes2[victim as usize + FRAME_HEADER_LEN + 3] ^= 0x01;
    bytes2[offsets[2].0 as usize + 3] = 0xff;
    ok(std::fs::write(&path, &bytes2));
    match Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)) {
        Err(ServerError::CorruptJournal { offset, reason, .. }) => {
            assert_eq!(offset, offsets[2].0);
            assert!(reason.contains("exceeds the limit"), "{reason}");
        }
        other => panic!("expected CorruptJournal, got {:?}", other.map(|(_, r)| r)),
    }
}

#[tokio::test]
async fn bad_magic_refuses_to_open() {
    let dir = ok(tempfile::tempdir());
    ok(std::fs::write(journal_path(dir.path()), b"NOTALOG!rest"));
    assert!(matches!(
        Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)),
        Err(ServerError::CorruptJournal { offset: 0, .. })
    ));
}

#[tokio::test]
async fn watermarks_are_clamped_and_never_go_back() {
    let dir = ok(tempfile::tempdir());
    let (mut journal, _) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, 10)));
    let bob = Arc::new(AtomicU64::new(0));
    put(&mut journal, JournalInput::Join { name: name("alice"), after: 0, mark: Arc::new(AtomicU64::new(0)) });
    put(&mut journal, JournalInput::Join { name: name("bob"), after: 0, mark: Arc::clone(&bob) });
    // The connection wrote seq 3 before the journal stored it: the watermark waits for the store.
    bob.store(3, Ordering::Release);
    for seq in 1..=2 {
        put(&mut journal, JournalInput::Store(Stored::plain(msg(seq, seq, "alice", Recipients::Broadcast))));
    }
    // The tick writes bob's watermark, clamped to what is stored; alice's has not moved.
    assert_eq!(ok(journal.handle_timeout(Instant::now() + MARKS_TICK)), None);
    put(&mut journal, JournalInput::Store(Stored::plain(msg(3, 3, "alice", Recipients::Broadcast))));
    ok(journal.close().await);
    let marks: Vec<u64> = records(dir.path())
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Consumed { marks } => Some(marks.into_iter().map(|(_, m)| m).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    // The tick's (clamped to 2), then close's.
    assert_eq!(marks, [2, 3]);
    let report = ok(logview::verify(dir.path()));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.deliveries, 3);
}

#[tokio::test]
async fn every_fsync_policy_writes_and_recovers() {
    for policy in [FsyncPolicy::EveryBatch, FsyncPolicy::Interval(Duration::from_millis(5)), FsyncPolicy::Never] {
        let dir = ok(tempfile::tempdir());
        let (mut journal, _) = ok(Journal::open(config(dir.path(), policy, 10)));
        put(&mut journal, JournalInput::Join { name: name("alice"), after: 0, mark: Arc::new(AtomicU64::new(0)) });
        // Turns of 1 to 9 records.
        for seq in 1..=50 {
            ok(journal.record(JournalInput::Store(Stored::plain(msg(seq, seq, "alice", Recipients::Broadcast)))));
            if seq % 10 == 0 || seq % 7 == 0 {
                ok(journal.end_turn());
            }
        }
        ok(journal.close().await);
        let (journal, rec) = ok(Journal::open(config(dir.path(), policy, 10)));
        ok(journal.close().await);
        assert_eq!((rec.state.last_seq, rec.state.lamport, rec.state.history.len()), (50, 50, 10), "{policy}");
        assert!(ok(logview::verify(dir.path())).is_ok());
    }
}

#[test]
fn fsync_policy_parses_and_displays() {
    for (text, policy) in [
        ("batch", FsyncPolicy::EveryBatch),
        ("never", FsyncPolicy::Never),
        ("interval:100", FsyncPolicy::Interval(Duration::from_millis(100))),
    ] {
        assert_eq!(ok(text.parse::<FsyncPolicy>()), policy);
        assert_eq!(policy.to_string(), text);
    }
    for bad in ["", "always", "interval:", "interval:x", "interval:-1"] {
        assert!(matches!(bad.parse::<FsyncPolicy>(), Err(ServerError::InvalidConfig { setting: "fsync", .. })));
    }
    assert_eq!(FsyncPolicy::default(), FsyncPolicy::EveryBatch);
}

#[test]
fn open_creates_the_data_directory() {
    let dir = ok(tempfile::tempdir());
    let nested = dir.path().join("a").join("b");
    let rt = ok(tokio::runtime::Builder::new_current_thread().enable_all().build());
    let (journal, _) = ok(Journal::open(JournalConfig::new(&nested)));
    ok(rt.block_on(journal.close()));
    assert!(journal_path(&nested).is_file());
}

/// One step of the model-based test; invalid steps (joining twice...) are skipped.
#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Leave(usize),
    Store { sender: usize, kind: u8, targets: u8, dl: u64 },
    Advance(usize, u64),
    Restart,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..4).prop_map(Op::Join),
        1 => (0usize..4).prop_map(Op::Leave),
        6 => (0usize..4, 0u8..3, any::<u8>(), 1u64..4).prop_map(|(sender, kind, targets, dl)| Op::Store { sender, kind, targets, dl }),
        6 => (0usize..4, 1u64..10).prop_map(|(u, k)| Op::Advance(u, k)),
        1 => Just(Op::Restart),
    ]
}

/// The expected state of the journal.
#[derive(Default)]
struct Model {
    last_seq: u64,
    lamport: u64,
    stored: Vec<ChatMessage>,
    /// Online users: mark, and the seqs intended for them in this session.
    online: BTreeMap<usize, (Arc<AtomicU64>, Vec<u64>)>,
    deliveries: u64,
}

impl Model {
    fn user(i: usize) -> UserName {
        name(&format!("u{i}"))
    }

    /// Counts the deliveries of a session that ends with its current mark.
    fn end_session(&mut self, user: usize) {
        if let Some((mark, intended)) = self.online.remove(&user) {
            let upto = mark.load(Ordering::Acquire);
            self.deliveries += intended.iter().filter(|&&s| s <= upto).count() as u64;
        }
    }

    /// The input for `op`, if it is valid now, updating the model.
    fn step(&mut self, op: &Op) -> Option<JournalInput> {
        match *op {
            Op::Join(u) if !self.online.contains_key(&u) => {
                let mark = Arc::new(AtomicU64::new(self.last_seq));
                self.online.insert(u, (Arc::clone(&mark), Vec::new()));
                Some(JournalInput::Join { name: Model::user(u), after: self.last_seq, mark })
            }
            Op::Leave(u) if self.online.contains_key(&u) => {
                self.end_session(u);
                Some(JournalInput::Leave { name: Model::user(u), after: self.last_seq, reason: "quit".into() })
            }
            Op::Store { sender, kind, targets, dl } if self.online.contains_key(&sender) => {
                let others: Vec<usize> = self.online.keys().copied().filter(|&u| u != sender).collect();
                let chosen: Vec<usize> = others.iter().copied().filter(|&u| targets & (1 << u) != 0).collect();
                let (recipients, intended) = match (kind, chosen.first()) {
                    (1, Some(&u)) => (Recipients::Unicast(Model::user(u)), vec![u]),
                    (2, Some(_)) => (Recipients::Multicast(chosen.iter().map(|&u| Model::user(u)).collect()), chosen),
                    _ => (Recipients::Broadcast, others),
                };
                self.last_seq += 1;
                self.lamport += dl;
                for u in intended {
                    if let Some((_, seqs)) = self.online.get_mut(&u) {
                        seqs.push(self.last_seq);
                    }
                }
                let m = ChatMessage {
                    id: MessageId::new(NodeId::SERVER, self.last_seq),
                    sender: Model::user(sender),
                    recipients,
                    body: format!("body {}\nline", self.last_seq),
                    lamport: Timestamp::new(self.lamport, NodeId::SERVER),
                    time: 0,
                };
                self.stored.push(m.clone());
                Some(JournalInput::Store(Stored::plain(m)))
            }
            Op::Advance(u, k) => {
                if let Some((mark, _)) = self.online.get(&u) {
                    let next = (mark.load(Ordering::Acquire) + k).min(self.last_seq);
                    mark.store(next, Ordering::Release);
                }
                None
            }
            _ => None,
        }
    }

    fn check(&self, rec: &Recovered, history: usize) -> Result<(), TestCaseError> {
        prop_assert_eq!(rec.state.last_seq, self.last_seq);
        prop_assert_eq!(rec.state.lamport, self.lamport);
        let skip = self.stored.len().saturating_sub(history);
        prop_assert_eq!(&rec.state.history[..], &self.stored[skip..]);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the joins, stores, leaves, watermarks and restarts, the journal reopens to the model's
    /// state and `verify` is clean with exactly the model's deliveries.
    #[test]
    fn journal_matches_a_model(ops in proptest::collection::vec(arb_op(), 0..150), history in 1usize..6) {
        let dir = ok(tempfile::tempdir());
        let rt = ok(tokio::runtime::Builder::new_current_thread().enable_all().build());
        rt.block_on(async {
            let mut model = Model::default();
            let (mut journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, history)));
            model.check(&rec, history)?;
            for op in &ops {
                if let Op::Restart = op {
                    ok(journal.close().await);
                    for u in model.online.keys().copied().collect::<Vec<_>>() {
                        model.end_session(u);
                    }
                    let (j, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, history)));
                    model.check(&rec, history)?;
                    journal = j;
                } else if let Some(input) = model.step(op) {
                    put(&mut journal, input);
                }
            }
            ok(journal.close().await);
            for u in model.online.keys().copied().collect::<Vec<_>>() {
                model.end_session(u);
            }
            let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, history)));
            ok(journal.close().await);
            model.check(&rec, history)?;
            let report = ok(logview::verify(dir.path()));
            prop_assert!(report.is_ok() && report.torn_tail.is_none(), "{}", report);
            prop_assert_eq!(report.messages, model.stored.len() as u64);
            prop_assert_eq!(report.deliveries, model.deliveries);
            let mut shown = Vec::new();
            ok(logview::show(dir.path(), &mut shown));
            let shown = String::from_utf8_lossy(&shown);
            prop_assert_eq!(shown.lines().filter(|l| l.starts_with("CONSUME ")).count() as u64, model.deliveries);
            prop_assert_eq!(shown.lines().filter(|l| l.starts_with("STORE ")).count(), model.stored.len());
            Ok(())
        })?;
    }
}

#[test]
fn a_second_journal_on_the_same_directory_is_refused_and_names_the_holder() {
    let dir = ok(tempfile::tempdir());
    let (journal, _) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, 10)));
    match Journal::open(config(dir.path(), FsyncPolicy::Never, 10)) {
        Err(ServerError::Locked { dir: locked, pid }) => {
            assert_eq!(locked, dir.path());
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // Readers take no lock: `log verify` works on the live directory.
    assert!(ok(logview::verify(dir.path())).is_ok());
    drop(journal);
    let (journal, _) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, 10)));
    drop(journal);
}

#[tokio::test]
async fn the_durable_watermark_follows_what_is_written_and_synced() {
    for policy in [FsyncPolicy::EveryBatch, FsyncPolicy::Interval(Duration::from_millis(5)), FsyncPolicy::Never] {
        let dir = ok(tempfile::tempdir());
        write_stores(dir.path(), 3).await;
        let (mut journal, recovered) = ok(Journal::open(config(dir.path(), policy, 10)));
        assert_eq!(journal.durable(), recovered.state.last_seq, "recovered messages are durable");
        let mut synced = journal.synced();
        for seq in 4..=19 {
            ok(journal.record(JournalInput::Store(Stored::plain(msg(seq, seq, "alice", Recipients::Broadcast)))));
        }
        assert_eq!(journal.durable(), 3, "{policy}: recorded is not durable before it is written");
        let advanced = ok(journal.end_turn());
        if policy == FsyncPolicy::EveryBatch {
            assert_eq!(advanced, None, "batch: durable once synced, not once written");
        } else {
            assert_eq!(advanced, Some(19), "{policy}: durable once written");
        }
        put(&mut journal, JournalInput::Store(Stored::plain(msg(20, 20, "alice", Recipients::Broadcast))));
        assert!(wait_durable(&mut journal, 20).await, "{policy}: watermark stopped below 20");
        assert_eq!(journal.durable(), 20);
        if policy != FsyncPolicy::Never {
            // The sync thread syncs what was written (interval: within its 5 ms), and says so.
            let synced_all = tokio::time::timeout(Duration::from_secs(10), synced.wait_for(|s| s.upto >= 20));
            assert!(matches!(synced_all.await, Ok(Ok(_))), "{policy}: the sync thread synced everything");
        } else {
            assert_eq!(synced.borrow().upto, 3, "never: no sync before close");
        }
        ok(journal.close().await);
        while synced.changed().await.is_ok() {}
        assert!(synced.changed().await.is_err(), "the watch ends with the sync thread");
    }
}

#[tokio::test]
async fn a_write_failure_stops_the_journal_and_nothing_more_becomes_durable() {
    let dir = ok(tempfile::tempdir());
    let (mut journal, _) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, 10)));
    put(&mut journal, JournalInput::Store(Stored::plain(msg(1, 1, "alice", Recipients::Broadcast))));
    assert_eq!(journal.durable(), 1);
    // A record over the frame size limit cannot be encoded: the journal stops, as on a failed write.
    let huge = ChatMessage {
        body: "x".repeat(chat_transport::MAX_FRAME_LEN + 1),
        ..msg(2, 2, "alice", Recipients::Broadcast)
    };
    assert!(matches!(journal.record(JournalInput::Store(Stored::plain(huge))), Err(ServerError::JournalStopped(_))));
    let reason = journal.stopped_reason().unwrap_or_default();
    assert!(reason.contains("journal.log"), "{reason}");
    assert!(matches!(journal.end_turn(), Err(ServerError::JournalStopped(r)) if r == reason));
    assert!(matches!(
        journal.record(JournalInput::Store(Stored::plain(msg(3, 3, "alice", Recipients::Broadcast)))),
        Err(ServerError::JournalStopped(_))
    ));
    assert_eq!(journal.durable(), 1);
    assert!(matches!(journal.close().await, Err(ServerError::JournalStopped(_))));
    let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::Never, 10)));
    ok(journal.close().await);
    assert_eq!(rec.state.last_seq, 1);
}

#[tokio::test]
async fn the_log_is_preallocated_in_chunks_and_zeros_after_the_records_are_not_damage() {
    for policy in [FsyncPolicy::EveryBatch, FsyncPolicy::Never] {
        let dir = ok(tempfile::tempdir());
        let path = journal_path(dir.path());
        let (mut journal, _) = ok(Journal::open(config(dir.path(), policy, 10)));
        put(&mut journal, JournalInput::Join { name: name("alice"), after: 0, mark: Arc::new(AtomicU64::new(0)) });
        for seq in 1..=50 {
            put(&mut journal, JournalInput::Store(Stored::plain(msg(seq, seq, "alice", Recipients::Broadcast))));
        }
        assert!(wait_durable(&mut journal, 50).await, "{policy}");
        ok(journal.close().await);
        // The writer (the sync thread under batch, the owner under never) kept zeros ahead of the records.
        let len = ok(std::fs::metadata(&path)).len();
        let end = records_end(dir.path());
        assert_eq!(len, PREALLOC_CHUNK, "{policy}: one chunk");
        assert!(end < len, "{policy}");
        assert!(ok(std::fs::read(&path))[end as usize..].iter().all(|&b| b == 0), "{policy}");
        // Reopening takes the zeros for free space: nothing truncated, the Start goes right after the
        // records, the file keeps its length.
        let (journal, rec) = ok(Journal::open(config(dir.path(), policy, 10)));
        ok(journal.close().await);
        assert_eq!((rec.state.last_seq, rec.truncated_bytes), (50, 0), "{policy}");
        let all = records(dir.path());
        assert_eq!(all.last(), Some(&(end, Record::Start { after: 50 })), "{policy}");
        assert_eq!(ok(std::fs::metadata(&path)).len(), len, "{policy}");
        let report = ok(logview::verify(dir.path()));
        assert!(report.is_ok() && report.torn_tail.is_none(), "{policy}: {report}");
        let mut shown = Vec::new();
        let summary = ok(logview::show(dir.path(), &mut shown));
        assert_eq!((summary.records, summary.torn_tail), (all.len() as u64, None), "{policy}");
    }
}

#[tokio::test]
async fn a_torn_record_in_preallocated_space_is_truncated_and_a_gap_before_records_is_refused() {
    let dir = ok(tempfile::tempdir());
    write_stores(dir.path(), 3).await;
    let path = journal_path(dir.path());
    let end = records_end(dir.path());
    let len = ok(std::fs::metadata(&path)).len();
    let mut record = Vec::new();
    ok(encode_record(&Record::Stored(Stored::plain(msg(4, 14, "alice", Recipients::Broadcast))), &mut record));

    // A crash during a write into preallocated space: part of a record, then the zeros.
    let mut bytes = ok(std::fs::read(&path));
    bytes[end as usize..end as usize + 10].copy_from_slice(&record[..10]);
    ok(std::fs::write(&path, &bytes));
    let report = ok(logview::verify(dir.path()));
    assert_eq!(report.torn_tail.as_ref().map(|t| (t.offset, t.bytes)), Some((end, len - end)), "{report}");
    let (journal, rec) = ok(Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)));
    ok(journal.close().await);
    assert_eq!((rec.state.last_seq, rec.truncated_bytes), (3, len - end));

    // Zeros, then a whole record (pages that reached the disk out of order before a power failure,
    // or damage): not taken for free space; the safe side, as for any corruption before the tail.
    let end = records_end(dir.path());
    let mut bytes = ok(std::fs::read(&path));
    bytes.resize(end as usize + 4096, 0);
    bytes.extend_from_slice(&record);
    ok(std::fs::write(&path, &bytes));
    match Journal::open(config(dir.path(), FsyncPolicy::EveryBatch, 10)) {
        Err(ServerError::CorruptJournal { offset, reason, .. }) => {
            assert_eq!(offset, end);
            assert!(reason.contains(&(end + 4096).to_string()), "{reason}");
        }
        other => panic!("expected CorruptJournal, got {:?}", other.map(|(_, r)| r)),
    }
}
