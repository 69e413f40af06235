//! The owner's half of the fan-out agreement (see `crate::fanout`): the stream's head is announced
//! only once the private frames of the turn are handed over.

use std::time::Instant;

use chat_core::{ChatMessage, Recipients, Timestamp, UserName};
use tokio::sync::{mpsc, oneshot};

use super::Owner;
use crate::fanout::feed::{FrameFeed, Next};
use crate::fanout::private_queue::{PrivateQueue, WriterProgress};
use crate::protocol::ServerFrame;
use crate::router::{ConnId, Input, Router, RouterConfig, RouterState};
use crate::server::accounts_file::AccountsFile;
use crate::server::connection::ConnEntry;

fn name(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

/// Registers `conn` with the owner (as a connection task does) and logs it in as `who`; the feed
/// reads what its writer would write.
fn connect(owner: &mut Owner, now: Instant, conn: ConnId, who: &str) -> FrameFeed {
    let (private, queue) = PrivateQueue::new(1024);
    let progress = WriterProgress::new();
    let reader = tokio::spawn(std::future::pending::<()>()).abort_handle();
    let (kill, _) = oneshot::channel();
    let gate = None;
    let entry = ConnEntry {
        private,
        progress: progress.clone(),
        kill: Some(kill),
        reader,
        legacy: false,
        resumable: true,
        gate,
    };
    owner.opened(conn, entry);
    owner.router.handle(now, Input::Opened { conn });
    owner.router.handle(now, Input::Login { conn, name: name(who) });
    FrameFeed::new(queue, owner.stream.reader(), progress)
}

/// The texts of the messages `feed` has ready, in the order its writer would write them.
fn messages(feed: &mut FrameFeed) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        match feed.next() {
            Next::Frame(ServerFrame::Message(ChatMessage { body, .. })) => out.push(body),
            Next::Frame(_) => {}
            Next::Nothing | Next::Closed => return out,
        }
    }
    panic!("more frames than the test sent")
}

fn send(owner: &mut Owner, now: Instant, req: u64, recipients: Recipients, body: &str) {
    let sent_at = Timestamp::new(req, chat_core::NodeId(1));
    owner.router.handle(now, Input::Send { conn: 1, req, recipients, body: body.into(), sent_at, key: req });
}

/// In one turn alice broadcasts `a1`, writes `ab1` to bob (a private frame for both), broadcasts
/// `a2`; the router asks for the stream to be published before the turn ends (as a cluster replica's
/// `handle_timeout` does after every batch). A writer that looks then must see nothing of the turn:
/// were `a1` and `a2` announced, it would write them before `ab1`, and the client, which drops a
/// message whose sequence number is not above the last it saw, would lose `ab1`.
#[tokio::test]
async fn the_head_is_announced_only_after_the_private_frames_of_the_turn_are_handed_over() {
    let now = Instant::now();
    let (inbound, _inbound_rx) = mpsc::channel(8);
    let config = RouterConfig { notice_delay: std::time::Duration::ZERO, ..RouterConfig::default() };
    let router = Router::new(config, RouterState::default());
    let mut owner = Owner::new(router, None, AccountsFile::new(None), inbound);
    let mut alice = connect(&mut owner, now, 1, "alice");
    let mut bob = connect(&mut owner, now, 2, "bob");
    owner.perform().await.unwrap();
    owner.end_turn(now).await.unwrap();
    assert_eq!((messages(&mut alice), messages(&mut bob)), (vec![], vec![]), "logged in, nothing sent yet");

    send(&mut owner, now, 1, Recipients::Broadcast, "a1");
    send(&mut owner, now, 2, Recipients::Unicast(name("bob")), "ab1");
    send(&mut owner, now, 3, Recipients::Broadcast, "a2");
    owner.router.handle_timeout(now);
    owner.perform().await.unwrap();
    assert_eq!(messages(&mut alice), Vec::<String>::new(), "sealed, but nothing handed over or announced");
    assert_eq!(messages(&mut bob), Vec::<String>::new());
    owner.end_turn(now).await.unwrap();
    assert_eq!(messages(&mut alice), ["a1", "ab1", "a2"], "one order");
    assert_eq!(messages(&mut bob), ["a1", "ab1", "a2"]);
}
