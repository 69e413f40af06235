//! The appender's exact outputs for each policy: when bytes are written, when a sync is asked for,
//! when the durable watermark moves, and what the watermark tick writes.

use chat_core::{ChatMessage, MessageId, NodeId, Recipients, Timestamp};

use super::*;
use crate::journal::Stored;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn name(s: &str) -> UserName {
    ok(UserName::new(s))
}

fn store(seq: u64) -> JournalInput {
    JournalInput::Store(Stored::plain(ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: name("alice"),
        recipients: Recipients::Broadcast,
        body: format!("m{seq}"),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }))
}

/// The bytes `records` encode to.
fn bytes(records: &[Record]) -> Vec<u8> {
    let mut buf = Vec::new();
    for r in records {
        ok(encode_record(r, &mut buf));
    }
    buf
}

fn store_record(seq: u64) -> Record {
    match store(seq) {
        JournalInput::Store(stored) => Record::Stored(stored),
        _ => unreachable!("store() makes a Store"),
    }
}

/// Handles `input` and returns every output it produced.
fn step(a: &mut Appender, input: Input) -> Vec<Output> {
    ok(a.handle(input));
    std::iter::from_fn(|| a.poll_output()).collect()
}

const START: u64 = 100;

#[test]
fn batch_writes_once_per_turn_and_is_durable_only_once_synced() {
    let now = Instant::now();
    let mut a = Appender::new(now, FsyncPolicy::EveryBatch, START, 7);
    assert!(step(&mut a, Input::Record(store(8))).is_empty(), "recording is encoding only");
    assert!(step(&mut a, Input::Record(store(9))).is_empty());
    let len = bytes(&[store_record(8), store_record(9)]).len() as u64;
    let end = START + len;
    assert_eq!(step(&mut a, Input::EndOfTurn), [Output::Write { end, upto: 9 }]);
    assert_eq!(a.buffer(), bytes(&[store_record(8), store_record(9)]));
    assert_eq!(step(&mut a, Input::Written), [Output::Sync { end, upto: 9 }]);
    assert!(a.buffer().is_empty());
    assert_eq!((a.durable(), a.unsynced()), (7, len));
    // A turn with nothing recorded writes nothing.
    assert!(step(&mut a, Input::EndOfTurn).is_empty());
    // The next turn is written while the first sync runs.
    step(&mut a, Input::Record(store(10)));
    let end2 = end + bytes(&[store_record(10)]).len() as u64;
    assert_eq!(step(&mut a, Input::EndOfTurn), [Output::Write { end: end2, upto: 10 }]);
    assert_eq!(step(&mut a, Input::Written), [Output::Sync { end: end2, upto: 10 }]);
    assert_eq!(step(&mut a, Input::Synced { end, upto: 9 }), [Output::Durable { upto: 9 }]);
    assert_eq!(a.unsynced(), end2 - end);
    // A sync that covers nothing new (or reports late) moves nothing back.
    assert!(step(&mut a, Input::Synced { end, upto: 9 }).is_empty());
    assert_eq!(step(&mut a, Input::Synced { end: end2, upto: 10 }), [Output::Durable { upto: 10 }]);
    assert_eq!((a.durable(), a.unsynced()), (10, 0));
}

#[test]
fn never_is_durable_once_written_and_asks_for_no_sync() {
    let mut a = Appender::new(Instant::now(), FsyncPolicy::Never, START, 0);
    step(&mut a, Input::Record(store(1)));
    let end = START + bytes(&[store_record(1)]).len() as u64;
    assert_eq!(step(&mut a, Input::EndOfTurn), [Output::Write { end, upto: 1 }]);
    assert_eq!(step(&mut a, Input::Written), [Output::Durable { upto: 1 }]);
    assert_eq!(a.durable(), 1);
}

#[test]
fn interval_is_durable_once_written_and_asks_for_a_sync() {
    let mut a = Appender::new(Instant::now(), FsyncPolicy::Interval(Duration::from_millis(100)), START, 0);
    step(&mut a, Input::Record(store(1)));
    let end = START + bytes(&[store_record(1)]).len() as u64;
    assert_eq!(step(&mut a, Input::EndOfTurn), [Output::Write { end, upto: 1 }]);
    assert_eq!(step(&mut a, Input::Written), [Output::Durable { upto: 1 }, Output::Sync { end, upto: 1 }]);
    // The sync only lowers what is unsynced: durability did not wait for it.
    assert!(step(&mut a, Input::Synced { end, upto: 1 }).is_empty());
    assert_eq!(a.unsynced(), 0);
}

#[test]
fn a_turn_of_joins_and_leaves_is_written_but_moves_no_watermark() {
    let mut a = Appender::new(Instant::now(), FsyncPolicy::Never, START, 5);
    let mark = Arc::new(AtomicU64::new(5));
    step(&mut a, Input::Record(JournalInput::Join { name: name("bob"), after: 5, mark: Arc::clone(&mark) }));
    let end = START + bytes(&[Record::Join { name: name("bob"), after: 5 }]).len() as u64;
    assert_eq!(step(&mut a, Input::EndOfTurn), [Output::Write { end, upto: 5 }]);
    assert!(step(&mut a, Input::Written).is_empty(), "nothing new stored: the watermark stays");
}

/// bob and carol tracked (their delivery marks returned), then messages 1 and 2 stored.
fn bob_and_carol_with_two_stored(a: &mut Appender) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
    let bob = Arc::new(AtomicU64::new(0));
    let carol = Arc::new(AtomicU64::new(0));
    step(a, Input::Record(JournalInput::Join { name: name("bob"), after: 0, mark: Arc::clone(&bob) }));
    step(a, Input::Record(JournalInput::Join { name: name("carol"), after: 0, mark: Arc::clone(&carol) }));
    step(a, Input::Record(store(1)));
    step(a, Input::Record(store(2)));
    (bob, carol)
}

#[test]
fn the_tick_writes_advanced_watermarks_clamped_to_what_is_stored() {
    let t0 = Instant::now();
    let mut a = Appender::new(t0, FsyncPolicy::EveryBatch, START, 0);
    assert_eq!(a.poll_timeout(), None, "nobody tracked: no tick");
    let (bob, _carol) = bob_and_carol_with_two_stored(&mut a);
    let Output::Write { end, .. } = step(&mut a, Input::EndOfTurn)[0] else { panic!("a write") };
    assert_eq!(step(&mut a, Input::Written), [Output::Sync { end, upto: 2 }]);
    assert_eq!(a.poll_timeout(), Some(t0 + MARKS_TICK));
    // bob's connection wrote seq 3 before the journal stored it: clamped to 2.
    bob.store(3, Ordering::Release);
    // Too early: nothing.
    ok(a.handle_timeout(t0 + MARKS_TICK / 2));
    assert_eq!(a.poll_output(), None);
    let t1 = t0 + MARKS_TICK;
    ok(a.handle_timeout(t1));
    let marks = Record::Consumed { marks: vec![(name("bob"), 2)] };
    let end2 = end + bytes(std::slice::from_ref(&marks)).len() as u64;
    assert_eq!(a.poll_output(), Some(Output::Write { end: end2, upto: 2 }));
    assert_eq!(a.buffer(), bytes(&[marks]));
    assert_eq!(step(&mut a, Input::Written), [Output::Sync { end: end2, upto: 2 }]);
    assert_eq!(a.poll_timeout(), Some(t1 + MARKS_TICK));
    // Nothing moved: the next tick writes nothing.
    ok(a.handle_timeout(t1 + MARKS_TICK));
    assert_eq!(a.poll_output(), None);
}

#[test]
fn a_leave_writes_the_final_watermark_first_and_close_writes_the_rest() {
    let mut a = Appender::new(Instant::now(), FsyncPolicy::Never, START, 0);
    let (bob, carol) = bob_and_carol_with_two_stored(&mut a);
    step(&mut a, Input::EndOfTurn);
    step(&mut a, Input::Written);
    bob.store(2, Ordering::Release);
    carol.store(1, Ordering::Release);
    step(&mut a, Input::Record(JournalInput::Leave { name: name("bob"), after: 2, reason: "quit".into() }));
    assert_eq!(
        a.buffer(),
        bytes(&[
            Record::Consumed { marks: vec![(name("bob"), 2)] },
            Record::Leave { name: name("bob"), after: 2, reason: "quit".into() }
        ])
    );
    step(&mut a, Input::EndOfTurn);
    step(&mut a, Input::Written);
    let outputs = step(&mut a, Input::Close);
    assert!(matches!(outputs[..], [Output::Write { upto: 2, .. }]), "{outputs:?}");
    assert_eq!(a.buffer(), bytes(&[Record::Consumed { marks: vec![(name("carol"), 1)] }]));
}

#[test]
fn watermarks_are_split_into_records_of_at_most_marks_per_record() {
    let mut a = Appender::new(Instant::now(), FsyncPolicy::Never, START, 1);
    let marks: Vec<_> = (0..MARKS_PER_RECORD + 1).map(|_| Arc::new(AtomicU64::new(1))).collect();
    for (i, mark) in marks.iter().enumerate() {
        let join = JournalInput::Join { name: name(&format!("u{i:05}")), after: 0, mark: Arc::clone(mark) };
        step(&mut a, Input::Record(join));
    }
    step(&mut a, Input::EndOfTurn);
    step(&mut a, Input::Written);
    step(&mut a, Input::Close);
    let all: Vec<(UserName, u64)> = (0..MARKS_PER_RECORD + 1).map(|i| (name(&format!("u{i:05}")), 1)).collect();
    let expected = bytes(&[
        Record::Consumed { marks: all[..MARKS_PER_RECORD].to_vec() },
        Record::Consumed { marks: all[MARKS_PER_RECORD..].to_vec() },
    ]);
    assert_eq!(a.buffer(), expected);
}

#[test]
fn only_batch_stops_taking_input_while_too_much_waits_for_a_sync() {
    for (policy, room_after) in [
        (FsyncPolicy::EveryBatch, false),
        (FsyncPolicy::Interval(Duration::from_millis(100)), true),
        (FsyncPolicy::Never, true),
    ] {
        let mut a = Appender::new(Instant::now(), policy, START, 0);
        let mut seq = 0;
        while a.unsynced() <= MAX_UNSYNCED_BYTES {
            assert!(a.has_room(), "{policy}");
            seq += 1;
            let JournalInput::Store(mut stored) = store(seq) else { unreachable!("a Store") };
            stored.message.body = "b".repeat(16 * 1024);
            step(&mut a, Input::Record(JournalInput::Store(stored)));
            step(&mut a, Input::EndOfTurn);
            step(&mut a, Input::Written);
        }
        assert_eq!(a.has_room(), room_after, "{policy}");
        let end = START + a.unsynced();
        step(&mut a, Input::Synced { end, upto: seq });
        assert!(a.has_room(), "{policy}: a sync makes room");
    }
}
