//! Offline messages, coordinator side, with a group secret: a message for a departed member is kept
//! (the sender's receipt says `queued`) and goes only to a node admitted again under that name *and*
//! the key the member had; names never seen stay `unknown_user`. See `group/offline.rs`.

use std::time::Instant;

use chat_core::{ErrorCode, NodeId, Recipients};

use super::identity_tests::{CAROL, MALLORY, admit, key_of, keyed_founder};
use super::tests::{drain, envelope, message, name};
use super::*;
use crate::protocol::{Change, Entry, PeerKey};

/// Every `Collected` change the outputs carry to the node at `port`.
fn collected_for(out: &[Output], port: u16) -> Vec<Change> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg: Envelope { msg: PeerMsg::Orders { entries, .. }, .. } } if to.port() == port => {
                Some(entries.iter().filter_map(|(e, _)| match e {
                    Entry::Change(c @ Change::Collected { .. }) => Some(c.clone()),
                    _ => None,
                }))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// `id` (at `port`, with `key`) leaves cleanly.
fn leave(node: &mut Node, t: Instant, id: NodeId, port: u16, key: PeerKey) {
    node.handle(t, Input::Authenticated { key, env: envelope(Some(id), port, PeerMsg::Leave) });
    drain(node);
    assert!(node.peers().iter().all(|p| p.node_id != Some(id)), "{id} left");
}

#[test]
fn a_message_for_a_departed_member_is_queued_and_only_its_key_collects_it() {
    let t0 = Instant::now();
    let mut node = keyed_founder(t0);
    let carol = admit(&mut node, t0, "carol", 3, CAROL);
    leave(&mut node, t0, carol, 3, CAROL);

    // To carol, offline but known: ordered, the receipt says queued. To a name nobody held: refused.
    let id = node.submit(t0, message(Recipients::Unicast(name("CAROL")), "while you were out")).expect("submitted");
    let out = drain(&mut node);
    assert!(out.contains(&Output::Sent { id, unknown: vec![], queued: vec![name("carol")] }), "{out:?}");
    let nobody = node.submit(t0, message(Recipients::Unicast(name("zed")), "?")).expect("submitted");
    assert!(matches!(
        drain(&mut node).as_slice(),
        [Output::SendFailed { id, error: CoreError::Rejected { code: ErrorCode::UnknownUser, .. } }] if *id == nobody
    ));

    // Mallory holds the secret and takes the free name "carol": admitted, but she collects nothing.
    node.handle(t0, Input::Datagram(envelope(None, 4, super::identity_tests::request("carol", 4, Some(MALLORY)))));
    let out = drain(&mut node);
    assert_eq!(collected_for(&out, 4), vec![], "another key gets nothing: {out:?}");
    let impostor = node.peers().iter().find(|p| p.name == name("carol")).and_then(|p| p.node_id).expect("admitted");
    leave(&mut node, t0, impostor, 4, MALLORY);
    // What is sent to "carol" while nobody holds the name again stays in the rightful carol's queue.
    node.submit(t0, message(Recipients::Multicast(vec![name("carol"), name("zed")]), "again")).expect("submitted");
    drain(&mut node);
    assert!(node.common.group.collectable(&name("carol"), Some(MALLORY)).is_none(), "bound to carol's key");

    // Carol's own key back: right after her Joined, both messages, in order, in a Collected.
    node.handle(t0, Input::Datagram(envelope(None, 3, super::identity_tests::request("carol", 3, Some(CAROL)))));
    let out = drain(&mut node);
    let bodies: Vec<Vec<String>> = collected_for(&out, 3)
        .into_iter()
        .map(|c| match c {
            Change::Collected { messages, .. } => messages.into_iter().map(|m| m.body).collect(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(bodies, vec![vec!["while you were out".to_string(), "again".to_string()]]);
    // Once carol holds it, every copy of the state has forgotten the queue.
    super::tests::ack_all_with(&mut node, t0, &out, |env| Input::Authenticated { key: key_of(env.addr.port()), env });
    assert!(node.common.group.collectable(&name("carol"), Some(CAROL)).is_none(), "collected once");
    assert_eq!(node.common.group.offline_weight(), 0);
}
