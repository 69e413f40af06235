//! Sequencer, log and failover-merge unit tests.

use super::*;
use chat_core::{ChatMessage, MessageId, Recipients, Timestamp};

fn t(epoch: u64, c: u64) -> Term {
    Term::new(epoch, NodeId(c))
}

fn msg(seq: u64) -> Entry {
    Entry::Visible(ChatMessage {
        id: MessageId::new(NodeId(9), seq),
        sender: UserName::new("s").unwrap(),
        recipients: Recipients::Broadcast,
        body: format!("m{seq}"),
        lamport: Timestamp::new(seq, NodeId(1)),
        time: 0,
    })
}

#[test]
fn commit_waits_for_every_member() {
    let mut s = Sequencer::new(t(1, 1), [NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(s.next_pos(), Pos::new(t(1, 1), 1));
    assert_eq!(s.next_pos(), Pos::new(t(1, 1), 2));
    assert_eq!(s.ack(NodeId(1), t(1, 1), 2), None);
    assert_eq!(s.ack(NodeId(2), t(1, 1), 2), None);
    assert_eq!(s.ack(NodeId(3), t(1, 1), 1), Some(Pos::new(t(1, 1), 1)));
    // 3 dies: its missing ack no longer blocks position 2.
    assert_eq!(s.remove_member(NodeId(3)), Some(Pos::new(t(1, 1), 2)));
    // A newcomer does not block what was ordered before it came.
    s.add_member(NodeId(4));
    assert_eq!(s.ack(NodeId(1), t(0, 1), 9), None, "other terms are ignored");
    assert_eq!(s.commit_pos(), Some(Pos::new(t(1, 1), 2)));
}

#[test]
fn log_delivers_in_order_and_skips_duplicate_ids() {
    let mut log = Log::new(8);
    let p = |i| Pos::new(t(1, 1), i);
    assert!(log.receive(p(2), msg(2), vec![]));
    assert!(log.receive(p(1), msg(1), vec![]));
    assert!(!log.receive(p(1), msg(1), vec![]));
    assert_eq!(log.held_index(t(1, 1)), 2);
    let got: Vec<u64> = log.commit(p(2)).into_iter().map(|(pos, _, _)| pos.index).collect();
    assert_eq!(got, [1, 2]);
    // The same message ordered again by a later coordinator is consumed but not delivered.
    assert!(log.receive(Pos::new(t(2, 5), 1), msg(2), vec![]));
    assert!(log.commit(Pos::new(t(2, 5), 1)).is_empty());
    assert_eq!(log.last(), Some(Pos::new(t(2, 5), 1)));
    assert!(!log.receive(p(3), msg(3), vec![]), "older than what was delivered");
}

#[test]
fn fills_complete_each_member_within_its_lineage_only() {
    let a = t(1, 1);
    let b = t(1, 2); // a concurrent term in another partition
    let p = |term, i| Pos::new(term, i);
    let mut reports = BTreeMap::new();
    // x delivered a:1..2 and holds a:3; y delivered a:1 only; z lived in the other partition.
    reports.insert(
        NodeId(10),
        Report {
            last: Some(p(a, 2)),
            lineage: Some(a),
            entries: vec![(p(a, 1), msg(1)), (p(a, 2), msg(2)), (p(a, 3), msg(3))],
        },
    );
    reports.insert(NodeId(11), Report { last: Some(p(a, 1)), lineage: Some(a), entries: vec![(p(a, 1), msg(1))] });
    reports.insert(NodeId(12), Report { last: Some(p(b, 1)), lineage: Some(b), entries: vec![(p(b, 1), msg(7))] });
    reports.insert(NodeId(13), Report { last: None, lineage: None, entries: vec![] });
    let plan = plan_fills(&reports);
    let idx = |v: &Vec<(Pos, Entry)>| v.iter().map(|(pos, _)| (pos.term.coordinator.0, pos.index)).collect::<Vec<_>>();
    assert_eq!(idx(&plan[&NodeId(10)]), [(1, 3)]);
    assert_eq!(idx(&plan[&NodeId(11)]), [(1, 2), (1, 3)]);
    assert_eq!(idx(&plan[&NodeId(12)]), []);
    assert!(!plan.contains_key(&NodeId(13)));
}

#[test]
fn hidden_placeholders_are_replaced_by_the_text_when_someone_has_it() {
    let a = t(1, 1);
    let mut reports = BTreeMap::new();
    let id = MessageId::new(NodeId(9), 1);
    reports
        .insert(NodeId(1), Report { last: None, lineage: Some(a), entries: vec![(Pos::new(a, 1), Entry::Hidden(id))] });
    reports.insert(NodeId(2), Report { last: None, lineage: Some(a), entries: vec![(Pos::new(a, 1), msg(1))] });
    let plan = plan_fills(&reports);
    assert_eq!(plan[&NodeId(1)], vec![(Pos::new(a, 1), msg(1))]);
}
