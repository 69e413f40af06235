//! Tests of `log show` and `log verify` on journals written for them.

use std::path::PathBuf;

use chat_core::{MessageId, NodeId, Timestamp, UserName};

use super::*;
use crate::journal::{MAGIC, encode_record};

fn name(s: &str) -> UserName {
    UserName::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn store(seq: u64, lamport: u64, sender: &str, recipients: Recipients, body: &str) -> Record {
    Record::Stored(crate::journal::Stored::plain(ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: name(sender),
        recipients,
        body: body.into(),
        lamport: Timestamp::new(lamport, NodeId::SERVER),
        time: 0,
    }))
}

fn join(user: &str, after: u64) -> Record {
    Record::Join { name: name(user), after }
}

fn leave(user: &str, after: u64) -> Record {
    Record::Leave { name: name(user), after, reason: "quit".into() }
}

fn consumed(marks: &[(&str, u64)]) -> Record {
    Record::Consumed { marks: marks.iter().map(|(u, m)| (name(u), *m)).collect() }
}

/// Writes a journal made of exactly `records`; returns the byte offset of each.
fn write_raw(dir: &Path, records: &[Record]) -> Vec<u64> {
    let mut bytes = MAGIC.to_vec();
    let mut offsets = Vec::new();
    for r in records {
        offsets.push(bytes.len() as u64);
        encode_record(r, &mut bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(journal_path(dir), bytes).unwrap_or_else(|e| panic!("{e}"));
    offsets
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn scripted() -> Vec<Record> {
    vec![
        Record::Start { after: 0 },
        join("alice", 0),
        join("bob", 0),
        store(1, 1, "alice", Recipients::Broadcast, "hi"),
        join("carol", 1),
        store(2, 2, "alice", Recipients::Unicast(name("bob")), "psst"),
        store(3, 5, "bob", Recipients::Multicast(vec![name("alice"), name("carol")]), "line1\nline2"),
        consumed(&[("alice", 3), ("bob", 2), ("carol", 3)]),
        leave("bob", 3),
        store(4, 6, "carol", Recipients::Broadcast, "back\\slash"),
        consumed(&[("alice", 4)]),
    ]
}

#[test]
fn show_expands_watermarks_to_intended_recipients() {
    let (_guard, dir) = tmp();
    write_raw(&dir, &scripted());
    let mut out = Vec::new();
    let summary = show(&dir, &mut out).unwrap_or_else(|e| panic!("{e}"));
    let expected = "\
START after 0
JOIN alice after 0
JOIN bob after 0
STORE [1] BROADCAST FROM alice TO ALL: hi
JOIN carol after 1
STORE [2] UNICAST FROM alice TO bob: psst
STORE [5] MULTICAST FROM bob TO alice,carol: line1\\nline2
CONSUME [5] MULTICAST BY alice FROM bob: line1\\nline2
CONSUME [1] BROADCAST BY bob FROM alice: hi
CONSUME [2] UNICAST BY bob FROM alice: psst
CONSUME [5] MULTICAST BY carol FROM bob: line1\\nline2
LEAVE bob after 3 (quit)
STORE [6] BROADCAST FROM carol TO ALL: back\\\\slash
CONSUME [6] BROADCAST BY alice FROM carol: back\\\\slash
";
    assert_eq!(String::from_utf8_lossy(&out), expected);
    assert_eq!(summary, ShowSummary { records: 11, lines: 14, torn_tail: None });
    let report = verify(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.records, report.messages, report.deliveries), (11, 4, 5));
}

fn kinds(records: &[Record]) -> Vec<(u64, ViolationKind)> {
    let (_guard, dir) = tmp();
    let offsets = write_raw(&dir, records);
    let report = verify(&dir).unwrap_or_else(|e| panic!("{e}"));
    for v in &report.violations {
        assert_eq!(v.offset, offsets[v.record as usize], "offset of {v}");
    }
    report.violations.into_iter().map(|v| (v.record, v.kind)).collect()
}

#[test]
fn verify_finds_each_kind_of_violation() {
    let base = || vec![Record::Start { after: 0 }, join("alice", 0), join("bob", 0)];
    let hi = |seq, lamport| store(seq, lamport, "alice", Recipients::Broadcast, "hi");

    let mut backwards = base();
    backwards.extend([hi(1, 1), hi(2, 2), consumed(&[("bob", 2)]), consumed(&[("bob", 1)])]);
    let bob = name("bob");
    assert_eq!(kinds(&backwards), [(6, ViolationKind::WatermarkBackwards { user: bob.clone(), previous: 2, upto: 1 })]);

    let mut beyond = base();
    beyond.extend([hi(1, 1), consumed(&[("bob", 2)])]);
    assert_eq!(kinds(&beyond), [(4, ViolationKind::WatermarkBeyondStored { user: bob.clone(), upto: 2, last_seq: 1 })]);

    let mut lamport = base();
    lamport.extend([hi(1, 5), hi(2, 5)]);
    assert_eq!(kinds(&lamport), [(4, ViolationKind::LamportNotIncreasing { seq: 2, previous: 5, found: 5 })]);

    let mut gap = base();
    gap.extend([hi(1, 1), hi(3, 2)]);
    assert_eq!(kinds(&gap), [(4, ViolationKind::SeqGap { expected: 2, found: 3 })]);

    let mut offline = base();
    offline.extend([hi(1, 1), leave("bob", 1), consumed(&[("bob", 1)])]);
    assert_eq!(kinds(&offline), [(5, ViolationKind::ConsumeByOffline { user: bob.clone(), upto: 1 })]);

    let mut membership = base();
    membership.extend([
        join("bob", 0),
        leave("carol", 0),
        store(1, 1, "alice", Recipients::Unicast(name("dave")), "x"),
        Record::Start { after: 0 },
        consumed(&[("alice", 1)]),
    ]);
    assert_eq!(
        kinds(&membership),
        [
            (3, ViolationKind::JoinWhileOnline { user: bob }),
            (4, ViolationKind::LeaveWhileOffline { user: name("carol") }),
            (5, ViolationKind::RecipientOffline { seq: 1, user: name("dave") }),
            (6, ViolationKind::StartMismatch { after: 0, last_seq: 1 }),
            (7, ViolationKind::ConsumeByOffline { user: name("alice"), upto: 1 }),
        ]
    );
}

#[test]
fn verify_reports_corruption_with_its_offset_and_keeps_checking() {
    let (_guard, dir) = tmp();
    let offsets = write_raw(&dir, &scripted());
    let path = journal_path(&dir);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let victim = offsets[3] as usize + FRAME_HEADER + 2; // inside the payload of record #3
    bytes[victim] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let report = verify(&dir).unwrap_or_else(|e| panic!("{e}"));
    let first = &report.violations[0];
    assert_eq!((first.offset, first.record), (offsets[3], 3));
    match &first.kind {
        ViolationKind::Corrupt { reason, resume } => {
            assert!(reason.contains("checksum"), "{reason}");
            assert_eq!(*resume, offsets[4]);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(report.to_string().contains(&format!("byte {} (before record #3): corrupt record", offsets[3])));
    assert_eq!(report.records, 10);
    let err = show(&dir, &mut Vec::new());
    assert!(matches!(err, Err(ServerError::CorruptJournal { offset, .. }) if offset == offsets[3]));
}

const FRAME_HEADER: usize = crate::journal::FRAME_HEADER_LEN;

#[test]
fn torn_tail_is_a_warning_not_a_violation() {
    let (_guard, dir) = tmp();
    let offsets = write_raw(&dir, &scripted());
    let path = journal_path(&dir);
    let len = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}")).len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap_or_else(|e| panic!("{e}"));
    file.set_len(len - 3).unwrap_or_else(|e| panic!("{e}"));
    let report = verify(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    let torn = report.torn_tail.clone().unwrap_or_else(|| panic!("no torn tail"));
    assert_eq!((torn.offset, torn.bytes), (offsets[10], len - 3 - offsets[10]));
    assert!(report.to_string().contains("warning: torn tail"));
    let summary = show(&dir, &mut Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.torn_tail, Some(torn));
}

#[test]
fn escape_keeps_one_line() {
    assert_eq!(escape("a\nb\\c\r\t\u{7}"), "a\\nb\\\\c\\r\\t\\u{7}");
}
