//! The replicated state machine without NATS: batches fed to replicas in memory, whole output
//! sequences compared.

use std::time::{Duration, Instant};

use chat_core::{ErrorCode, NodeId, Recipients, Timestamp, UserName};

use super::entry::{BATCH_VERSION, BatchHeader, BatchWriter, Entry, conn_base};
use super::replica::{Applied, INSTANCE_DOWN, LOG_EPOCH_MS, Replica};
use super::replicated;
use crate::protocol::ServerFrame;
use crate::router::{ClusterLogin, ConnId, Output, Router, RouterConfig, RouterState};

const T0: u64 = LOG_EPOCH_MS + 1_000_000;

fn name(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn conn(instance: u32, n: u64) -> ConnId {
    conn_base(instance) + n
}

fn admit(conn: ConnId, who: &str) -> Entry {
    Entry::Admit(ClusterLogin {
        conn,
        name: name(who),
        quiet: false,
        token: [conn as u8; 32],
        resume: None,
        legacy: false,
        resumable: true,
    })
}

fn send(conn: ConnId, req: u64, body: &str) -> Entry {
    Entry::Send {
        conn,
        req,
        recipients: Recipients::Broadcast,
        body: body.into(),
        sent_at: Timestamp::new(0, NodeId(1)),
        key: req,
    }
}

fn batch(instance: u32, number: u64, entries: &[Entry]) -> bytes::Bytes {
    let mut w = BatchWriter::new(&BatchHeader { version: BATCH_VERSION, instance, number, time_ms: 0 });
    for e in entries {
        assert!(w.push(e));
    }
    w.finish()
}

/// A replica and its router; the log is fed through [`Node::feed`].
struct Node {
    replica: Replica,
    router: Router,
    seq: u64,
}

impl Node {
    fn new() -> Self {
        let config = replicated(RouterConfig { grace: Duration::from_secs(60), ..RouterConfig::default() });
        Node { replica: Replica::new(Instant::now()), router: Router::new(config, RouterState::default()), seq: 0 }
    }

    /// Applies the next stored batch at log time `t` (ms); returns what the router output.
    fn feed(&mut self, t: u64, payload: &[u8]) -> (Applied, Vec<Output>) {
        self.seq += 1;
        let applied = self.replica.apply(&mut self.router, self.seq, t, payload);
        (applied, std::iter::from_fn(|| self.router.poll_output()).collect())
    }
}

/// The frames output for `conn`, in order (replies, deliveries, and its subscription).
fn frames_for(outputs: &[Output], conn: ConnId) -> Vec<ServerFrame> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Reply { conn: c, frame, .. } if *c == conn => Some(frame.clone()),
            Output::Deliver { conns, frame, .. } if conns.contains(&conn) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_replica_outputs_the_same_for_the_same_log() {
    let log = [
        batch(1, 1, &[Entry::Up, admit(conn(1, 1), "alice")]),
        batch(2, 1, &[Entry::Up, admit(conn(2, 1), "bob")]),
        batch(
            1,
            2,
            &[send(conn(1, 1), 1, "hi"), Entry::JoinRoom { conn: conn(1, 1), req: 2, room: "#ops".parse().unwrap() }],
        ),
        batch(2, 2, &[send(conn(2, 1), 1, "yo"), Entry::Gone { conn: conn(2, 1), reason: "disconnected".into() }]),
        batch(1, 3, &[Entry::Tick]),
    ];
    let (mut a, mut b) = (Node::new(), Node::new());
    for (i, payload) in log.iter().enumerate() {
        let t = T0 + i as u64 * 10;
        let (_, out_a) = a.feed(t, payload);
        let (_, out_b) = b.feed(t, payload);
        assert_eq!(out_a, out_b, "batch {i}");
    }
    assert_eq!(a.router.last_seq(), 2);
    assert_eq!(a.router.online(), 2, "bob's session is detached, not ended");
    assert_eq!(a.router.connections(), b.router.connections());
}

#[test]
fn the_first_claim_in_the_log_wins_a_name() {
    let mut node = Node::new();
    node.feed(T0, &batch(2, 1, &[admit(conn(2, 1), "Bob")]));
    let (_, out) = node.feed(T0, &batch(1, 1, &[admit(conn(1, 1), "bob")]));
    let frames = frames_for(&out, conn(1, 1));
    assert!(
        matches!(&frames[..], [ServerFrame::Refused { code: ErrorCode::NameTaken, .. }]),
        "the later claim is refused: {frames:?}"
    );
    assert!(out.contains(&Output::Close { conn: conn(1, 1) }));
    assert_eq!(node.router.name_of(conn(2, 1)), Some(&name("Bob")));
}

#[test]
fn a_new_session_carries_no_token_in_the_log_and_resumes_on_another_instance() {
    let mut node = Node::new();
    let (_, out) = node.feed(T0, &batch(1, 1, &[admit(conn(1, 1), "alice"), send(conn(1, 1), 1, "m1")]));
    let welcome = frames_for(&out, conn(1, 1)).into_iter().next().unwrap();
    let ServerFrame::Welcome { session, .. } = welcome else { panic!("{welcome:?}") };
    assert_eq!(session.token, "", "the instance puts its token in; the log has only the hash");
    // Instance 1 dies without a word; alice resumes on instance 2 with her token's hash and cursor 0.
    let resume = Entry::Admit(ClusterLogin {
        conn: conn(2, 7),
        name: name("alice"),
        quiet: false,
        token: [9; 32],
        resume: Some(([conn(1, 1) as u8; 32], 0)),
        legacy: false,
        resumable: true,
    });
    let (_, out) = node.feed(T0 + 5, &batch(2, 1, &[resume]));
    assert!(out.contains(&Output::Kick {
        conn: conn(1, 1),
        code: ErrorCode::Protocol,
        reason: "this session was resumed on another connection".into()
    }));
    let frames = frames_for(&out, conn(2, 7));
    assert!(matches!(&frames[0], ServerFrame::Welcome { session, .. } if session.resumed == Some(1)), "{frames:?}");
    assert!(matches!(&frames[1], ServerFrame::Message(m) if m.body == "m1"), "the missed message: {frames:?}");
}

#[test]
fn an_instance_marked_down_detaches_its_sessions_and_is_ignored_from_then_on() {
    let mut node = Node::new();
    node.feed(T0, &batch(1, 1, &[admit(conn(1, 1), "alice")]));
    node.feed(T0, &batch(2, 1, &[admit(conn(2, 1), "bob")]));
    let (applied, out) = node.feed(T0 + 1, &batch(2, 2, &[Entry::Down { instance: 1 }]));
    assert_eq!(applied, Applied::Batch { instance: 2, entries: 1, down: vec![1], accounts: vec![] });
    assert!(!out.iter().any(|o| matches!(o, Output::SessionEnded { .. })), "detached, not ended: {out:?}");
    assert!(node.replica.is_down(1));
    assert_eq!(node.router.connections(), vec![conn(2, 1)]);
    // A late batch of the dead instance changes nothing.
    let (applied, out) = node.feed(T0 + 2, &batch(1, 2, &[send(conn(1, 1), 1, "ghost")]));
    assert_eq!(applied, Applied::Ignored("from an instance marked down"));
    assert!(out.iter().all(|o| matches!(o, Output::Publish)), "{out:?}");
    // The grace period runs on log time: a tick of another instance 60 s later ends alice's session.
    let (_, out) = node.feed(T0 + 1 + 60_000, &batch(2, 3, &[Entry::Tick]));
    let ended: Vec<_> = out.iter().filter(|o| matches!(o, Output::SessionEnded { .. })).collect();
    assert_eq!(ended.len(), 1, "{out:?}");
    assert!(
        matches!(ended[0], Output::SessionEnded { name, reason, .. } if name.as_str() == "alice" && reason == "timeout")
    );
    assert_eq!(INSTANCE_DOWN, "instance_down");
}

#[test]
fn duplicates_redeliveries_garbage_and_foreign_connections_are_ignored() {
    let mut node = Node::new();
    let first = batch(1, 1, &[admit(conn(1, 1), "alice")]);
    node.feed(T0, &first);
    // The same batch stored twice (a retry outside the dedup window): applied once.
    assert_eq!(node.feed(T0, &first).0, Applied::Ignored("duplicate batch"));
    // The consumer hands an old sequence again: ignored.
    assert_eq!(node.replica.apply(&mut node.router, 1, T0, &first), Applied::Ignored("redelivered"));
    // Bytes that are no batch.
    assert_eq!(node.feed(T0, b"\x00\x00\x00\x05hello").0, Applied::Ignored("malformed"));
    // Instance 2 speaks for a connection of instance 1 (a bug or an attack): that entry is dropped.
    let (applied, out) = node.feed(T0, &batch(2, 1, &[send(conn(1, 1), 1, "forged"), Entry::Tick]));
    assert_eq!(applied, Applied::Batch { instance: 2, entries: 1, down: vec![], accounts: vec![] });
    assert!(!out.iter().any(|o| matches!(o, Output::Store(_))), "{out:?}");
    assert_eq!(node.replica.rejected(), 2);
    assert_eq!(node.router.last_seq(), 0);
}

#[test]
fn log_time_never_goes_back() {
    let mut node = Node::new();
    node.feed(T0 + 500, &batch(1, 1, &[admit(conn(1, 1), "alice")]));
    let (_, out) = node.feed(T0, &batch(1, 2, &[send(conn(1, 1), 1, "late clock")]));
    let stored = out.iter().find_map(|o| if let Output::Store(s) = o { Some(s.clone()) } else { None }).unwrap();
    assert_eq!(stored.message.time, T0 + 500, "a stream timestamp behind the last one counts as the last");
    assert_eq!(node.replica.log_ms(), T0 + 500);
}

fn account_login(conn: ConnId, who: &str) -> Entry {
    let Entry::Admit(login) = admit(conn, who) else { unreachable!() };
    Entry::Authenticated(login)
}

#[test]
fn accounts_come_from_the_log_and_verified_logins_start_sessions_under_the_accounts_name() {
    use super::accounts::AccountChange;
    let mut accounts_mode = Node::new();
    accounts_mode.router = Router::new(
        replicated(RouterConfig { auth: crate::router::AuthMode::Accounts, ..RouterConfig::default() }),
        RouterState::default(),
    );
    for node in [&mut Node::new(), &mut accounts_mode] {
        let phc = crate::accounts::hash_password("correct horse").unwrap();
        let register = |who: &str| Entry::Account(AccountChange::Register { name: name(who), password: phc.clone() });
        // Two registrations of one name: the first in the log wins, the second is refused.
        let (applied, _) = node.feed(T0, &batch(9, 1, &[register("Alice"), register("alice")]));
        let refused = Err("Alice is registered already".to_string());
        assert_eq!(applied, Applied::Batch { instance: 9, entries: 2, down: vec![], accounts: vec![Ok(()), refused] });
        assert_eq!(node.replica.accounts().names(), [name("Alice")]);
        // A plain login under the registered name is refused, as on a single server.
        let (_, out) = node.feed(T0, &batch(1, 1, &[admit(conn(1, 1), "alice")]));
        let frames = frames_for(&out, conn(1, 1));
        assert!(
            matches!(&frames[..], [ServerFrame::Refused { code: ErrorCode::NameTaken | ErrorCode::AuthFailed, .. }]),
            "{frames:?}"
        );
        // A login its instance verified: a session under the account's name (display form).
        let (_, out) = node.feed(T0, &batch(1, 2, &[account_login(conn(1, 2), "Alice")]));
        assert!(
            matches!(&frames_for(&out, conn(1, 2))[0], ServerFrame::Welcome { name: n, .. } if n.as_str() == "Alice")
        );
        // The account is removed before another verified login reaches the log: refused.
        let remove = Entry::Account(AccountChange::Remove { name: name("alice") });
        node.feed(T0, &batch(9, 2, &[remove]));
        let (_, out) = node.feed(T0, &batch(2, 1, &[account_login(conn(2, 1), "Alice")]));
        let frames = frames_for(&out, conn(2, 1));
        assert!(matches!(&frames[..], [ServerFrame::Refused { code: ErrorCode::AuthFailed, .. }]), "{frames:?}");
    }
    // In accounts mode the plain login was refused for want of a credential.
    assert!(accounts_mode.router.name_of(conn(1, 1)).is_none());
}
