//! Behaviour of the full-screen client's state: what lines become, views, the bell, bounds.

use chat_core::{ErrorCode, Event, PeerInfo, Recipients, SendReceipt};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};

use super::events::{Reply, mentions};
use super::state::{Link, MAX_VIEWS, MAX_WAITING_REQUESTS, Request};
use super::test_util::*;
use super::view::{Entry, MAX_ENTRIES};
use crate::session::Ending;

fn requests(ui: &mut super::state::Ui) -> Vec<Request> {
    std::iter::from_fn(|| ui.poll_request()).collect()
}

fn last_entry(ui: &super::state::Ui) -> Entry {
    ui.views[ui.current].entries().next_back().cloned().unwrap()
}

#[test]
fn lines_become_requests_where_the_user_is() {
    let mut ui = ui(80, 24);
    assert_eq!(requests(&mut ui), [Request::Refresh(None)], "who is online, for the side panel");
    enter(&mut ui, "hello all");
    enter(&mut ui, "/msg bob hi");
    enter(&mut ui, "MULTICAST:bob,carol:team");
    enter(&mut ui, "/join #ops");
    assert_eq!(
        requests(&mut ui),
        [
            Request::Send { to: Recipients::Broadcast, text: "hello all".into() },
            Request::Send { to: Recipients::Unicast(n("bob")), text: "hi".into() },
            Request::Send { to: Recipients::Multicast(vec![n("bob"), n("carol")]), text: "team".into() },
            Request::Join(r("#ops")),
        ]
    );
    ui.handle_reply(Reply::Joined(r("#ops"), vec![]));
    assert_eq!(requests(&mut ui), [Request::Refresh(Some(r("#ops")))]);
    enter(&mut ui, "in the room");
    enter(&mut ui, "/who");
    enter(&mut ui, "/part");
    assert_eq!(
        requests(&mut ui),
        [
            Request::Send { to: Recipients::Room(r("#ops")), text: "in the room".into() },
            Request::Who(Some(r("#ops"))),
            Request::Part(r("#ops")),
        ]
    );
    ui.handle_reply(Reply::Parted(r("#ops")));
    assert_eq!((ui.views.len(), ui.current), (1, 0), "the room's view is gone; back to everyone");
    enter(&mut ui, "/part");
    assert!(matches!(last_entry(&ui), Entry::Error(e) if e.starts_with("bad_command: you are not in a room")));
    enter(&mut ui, "/switch #nowhere");
    assert!(matches!(last_entry(&ui), Entry::Error(e) if e.starts_with("not_member")));
    enter(&mut ui, "/frobnicate");
    assert!(matches!(last_entry(&ui), Entry::Error(e) if e.starts_with("bad_command: unknown command /frobnicate")));
    assert!(requests(&mut ui).is_empty());
    let sent: Vec<String> = std::iter::from_fn(|| ui.poll_history()).collect();
    assert_eq!(sent.len(), 10, "every line typed goes to the history file: {sent:?}");
}

#[test]
fn views_switch_with_keys_and_count_what_was_missed() {
    let mut ui = ui(80, 24);
    ui.handle_reply(Reply::Joined(r("#ops"), vec![]));
    ui.handle_reply(Reply::Joined(r("#dev"), vec![]));
    assert_eq!(ui.current, 2);
    ui.handle_event(msg("bob", Recipients::Room(r("#ops")), "one"));
    ui.handle_event(msg("bob", Recipients::Room(r("#ops")), "alice, two"));
    ui.handle_event(said("bob", "three"));
    assert_eq!((ui.views[1].unread, ui.views[1].mentions, ui.views[0].unread), (2, 1, 1));
    ui.handle_terminal(ctrl('n'));
    assert_eq!(ui.current, 0, "round the list");
    assert_eq!(ui.views[0].unread, 0);
    ui.handle_terminal(TermEvent::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)));
    assert_eq!((ui.current, ui.views[1].unread, ui.views[1].mentions), (1, 0, 0));
    ui.handle_terminal(ctrl('p'));
    assert_eq!(ui.current, 0);
    enter(&mut ui, "/switch #dev");
    assert_eq!(ui.current, 2);
    enter(&mut ui, "/switch *");
    assert_eq!(ui.current, 0);
}

#[test]
fn the_bell_rings_for_mentions_and_private_messages_from_others_only() {
    let mut ui = ui(80, 24);
    ui.handle_event(said("bob", "nothing for you"));
    assert!(!ui.take_bell());
    ui.handle_event(said("bob", "ALICE: look"));
    assert!(ui.take_bell());
    assert!(!ui.take_bell(), "once per ring");
    ui.handle_event(msg("bob", Recipients::Unicast(n("alice")), "psst"));
    assert!(ui.take_bell());
    ui.handle_event(msg("bob", Recipients::Multicast(vec![n("carol"), n("alice")]), "team"));
    assert!(ui.take_bell());
    ui.handle_event(said("alice", "I am alice"));
    assert!(!ui.take_bell(), "not for her own message");
    ui.handle_event(said("bob", "malice aforethought, alice_b"));
    assert!(!ui.take_bell(), "only her name as a word");
    let mut quiet = ui.without_bell();
    quiet.handle_event(said("bob", "alice?"));
    assert!(!quiet.take_bell(), "--no-bell");
    assert!(matches!(last_entry(&quiet), Entry::Message { mention: true, .. }), "still highlighted");
    assert!(mentions("hi, Alice.", "alice") && mentions("alice", "alice") && !mentions("alicex", "alice"));
}

#[test]
fn leaving_and_losing_the_session() {
    for (keys, why) in [(vec![ctrl('c')], "Ctrl-C"), (vec![ctrl('d')], "Ctrl-D")] {
        let mut ui = ui(80, 24);
        for k in keys {
            ui.handle_terminal(k);
        }
        assert_eq!(ui.ending(), Some(&Ending::Left), "{why}");
    }
    let mut ui = ui(80, 24);
    ui.handle_terminal(key(KeyCode::Char('x')));
    ui.handle_terminal(ctrl('d'));
    assert_eq!(ui.ending(), None, "Ctrl-D ends only an empty line");
    enter(&mut ui, "");
    enter(&mut ui, "/quit");
    assert_eq!(ui.ending(), Some(&Ending::Left));
    let mut ui = super::test_util::ui(80, 24);
    ui.handle_event(Event::Disconnected { code: ErrorCode::ShuttingDown, reason: "bye".into() });
    assert_eq!(ui.ending(), Some(&Ending::Lost("bye".into())));
    let mut ui = super::test_util::ui(80, 24);
    ui.handle_reply(Reply::Failed { code: ErrorCode::Disconnected, message: "gone".into(), closed: true });
    assert_eq!(ui.ending(), Some(&Ending::Lost("gone".into())));
}

#[test]
fn the_status_follows_the_connection_and_people_are_asked_again_after_a_resume() {
    let mut ui = ui(80, 24);
    ui.handle_reply(Reply::Joined(r("#ops"), vec![]));
    requests(&mut ui);
    ui.handle_event(Event::Reconnecting { attempt: 1, in_ms: 100 });
    ui.handle_event(Event::Reconnecting { attempt: 2, in_ms: 200 });
    assert_eq!(ui.link, Link::Reconnecting(2));
    ui.handle_event(Event::Resumed { missed: 3 });
    assert_eq!(ui.link, Link::Resumed(3));
    assert_eq!(requests(&mut ui), [Request::Refresh(None), Request::Refresh(Some(r("#ops")))]);
    let status = screen(&ui).pop().unwrap();
    assert!(status.contains("· resumed"), "{status}");
}

#[test]
fn people_come_and_go_and_tab_completes_them() {
    let mut ui = ui(80, 24);
    ui.handle_reply(Reply::People(None, vec![PeerInfo::named(n("alice")), PeerInfo::named(n("bob"))]));
    ui.handle_event(joined("Bernard"));
    ui.handle_event(Event::PeerLeft(PeerInfo::named(n("bob"))));
    assert_eq!(ui.views[0].people().collect::<Vec<_>>(), ["alice", "Bernard"]);
    for c in "/msg be".chars() {
        ui.handle_terminal(key(KeyCode::Char(c)));
    }
    ui.handle_terminal(key(KeyCode::Tab));
    assert_eq!(ui.editor.text(), "/msg Bernard ");
}

#[test]
fn a_send_answered_with_unknown_and_offline_names_says_so() {
    let mut ui = ui(80, 24);
    let receipt = SendReceipt {
        id: chat_core::MessageId::new(chat_core::NodeId(0), 3),
        unknown: vec![n("zed")],
        queued: vec![n("carol")],
    };
    ui.handle_reply(Reply::Sent(receipt));
    let lines: Vec<Entry> = ui.views[0].entries().skip(1).cloned().collect();
    assert_eq!(
        lines,
        [
            Entry::Error("unknown_user: not delivered to zed (unknown here)".into()),
            Entry::Info("carol is offline; they will get it when they return".into()),
        ]
    );
}

#[test]
fn a_hostile_server_cannot_grow_the_state_without_bound() {
    let mut ui = ui(80, 24);
    for i in 0..MAX_VIEWS + 50 {
        ui.handle_event(msg("bob", Recipients::Room(r(&format!("#r{i}"))), "x"));
    }
    assert_eq!(ui.views.len(), MAX_VIEWS);
    for i in 0..MAX_ENTRIES + 10 {
        ui.handle_event(said("bob", &format!("{i}")));
    }
    assert_eq!(ui.views[0].entries().len(), MAX_ENTRIES);
    requests(&mut ui);
    for _ in 0..MAX_WAITING_REQUESTS + 5 {
        enter(&mut ui, "flood");
    }
    assert_eq!(requests(&mut ui).len(), MAX_WAITING_REQUESTS);
    assert!(matches!(last_entry(&ui), Entry::Error(e) if e.starts_with("too_many")));
}

#[test]
fn a_paste_is_one_multi_line_message() {
    let mut ui = ui(80, 24);
    requests(&mut ui);
    ui.handle_terminal(TermEvent::Paste("first line\r\nsecond line".into()));
    ui.handle_terminal(key(KeyCode::Enter));
    assert_eq!(
        requests(&mut ui),
        [Request::Send { to: Recipients::Broadcast, text: "first line\nsecond line".into() }]
    );
}
