//! Exact screens of the full-screen client, drawn into ratatui's `TestBackend`: empty, a
//! conversation, scrolled back with the unread marker, a narrow resize; and what no screen may show.

use chat_core::{Event, PeerInfo, Recipients};
use crossterm::event::{Event as TermEvent, KeyCode};
use ratatui::style::Modifier;

use super::events::Reply;
use super::lines::{MENTION, name_colour};
use super::test_util::*;

fn people(names: &[&str]) -> Vec<PeerInfo> {
    names.iter().map(|name| PeerInfo::named(n(name))).collect()
}

#[test]
fn an_empty_screen() {
    let ui = ui(70, 10);
    assert_eq!(
        screen(&ui),
        [
            "* joined as alice; type /help for commands,   │rooms",
            "  Ctrl-C to leave                             │▸ everyone",
            "                                              │",
            "                                              │people (0)",
            "                                              │",
            "                                              │",
            "                                              │",
            "                                              │",
            ">",
            " alice · server 127.0.0.1:7878 · connected           everyone · /help",
        ]
    );
}

#[test]
fn a_conversation_with_a_room_unread_counts_and_people() {
    let mut ui = ui(70, 12);
    ui.handle_reply(Reply::People(None, people(&["alice", "bob", "carol"])));
    ui.handle_event(said("bob", "hi alice, how are you?"));
    ui.handle_event(said("alice", "fine; the release is out"));
    ui.handle_event(msg("bob", Recipients::Unicast(n("alice")), "psst"));
    ui.handle_event(msg("carol", Recipients::Multicast(vec![n("alice"), n("bob")]), "lunch?"));
    ui.handle_reply(Reply::Joined(r("#ops"), vec![]));
    ui.handle_reply(Reply::People(Some(r("#ops")), people(&["alice", "dave"])));
    ui.handle_event(msg("dave", Recipients::Room(r("#ops")), "deploy at 5"));
    ui.handle_event(said("bob", "anyone?"));
    ui.handle_event(said("carol", "alice: ping"));
    for c in "on it".chars() {
        ui.handle_terminal(key(KeyCode::Char(c)));
    }
    assert_eq!(
        screen(&ui),
        [
            "* you joined #ops: plain text now goes there  │rooms",
            "  (Ctrl-N/Ctrl-P to switch views)             │  everyone 2!",
            "dave: deploy at 5                             │▸ #ops",
            "                                              │",
            "                                              │people (2)",
            "                                              │  alice",
            "                                              │  dave",
            "                                              │",
            "                                              │",
            "                                              │",
            "#ops> on it",
            " alice · server 127.0.0.1:7878 · connected               #ops · /help",
        ]
    );
    ui.handle_terminal(ctrl('p'));
    assert_eq!(
        screen(&ui)[..9],
        [
            "* joined as alice; type /help for commands,   │rooms",
            "  Ctrl-C to leave                             │▸ everyone",
            "bob: hi alice, how are you?                   │  #ops",
            "alice: fine; the release is out               │",
            "bob → you: psst                               │people (3)",
            "carol → {alice, bob}: lunch?                  │  alice",
            "bob: anyone?                                  │  bob",
            "carol: alice: ping                            │  carol",
            "                                              │",
        ],
        "the unread count is gone once the view is shown"
    );
    assert_eq!(screen(&ui)[10], "> on it", "the prompt says where plain text goes");
}

#[test]
fn names_have_their_colours_and_mentions_stand_out() {
    let mut ui = ui(70, 10);
    ui.handle_event(said("bob", "hi alice"));
    ui.handle_event(said("alice", "hi bob"));
    let buffer = draw(&ui);
    assert_eq!(rows(&buffer)[2], "bob: hi alice                                 │");
    assert_eq!(buffer[(0, 2)].fg, name_colour("bob"));
    assert_eq!(buffer[(5, 2)].style().fg, MENTION.fg, "bob names alice: her screen highlights it");
    assert!(buffer[(5, 2)].modifier.contains(Modifier::BOLD));
    assert!(buffer[(0, 3)].modifier.contains(Modifier::REVERSED), "her own name");
    assert!(!buffer[(0, 2)].modifier.contains(Modifier::REVERSED));
    assert_eq!(buffer[(7, 3)].fg, ratatui::style::Color::Reset, "her own message is not a mention");
}

#[test]
fn scrolled_back_new_messages_do_not_move_the_view_and_a_marker_counts_them() {
    let mut ui = ui(50, 8);
    for i in 1..=20 {
        ui.handle_event(said("bob", &format!("line {i}")));
    }
    ui.handle_terminal(key(KeyCode::PageUp));
    let back = [
        "bob: line 11",
        "bob: line 12",
        "bob: line 13",
        "bob: line 14",
        "bob: line 15",
        "── more below (End) ──────────────────────────────",
        ">",
        " alice · server 127.0.0.1:7878 · connected",
    ];
    assert_eq!(screen(&ui), back, "a page up, minus one row of overlap");
    ui.handle_event(said("carol", "new one"));
    ui.handle_event(said("carol", "and another"));
    let mut marked = back.map(String::from);
    marked[5] = "── 2 new message(s) below (End) ──────────────────".into();
    assert_eq!(screen(&ui), marked, "not yanked down; the marker counts what arrived");
    ui.handle_terminal(key(KeyCode::End));
    assert_eq!(
        screen(&ui)[..6],
        ["bob: line 17", "bob: line 18", "bob: line 19", "bob: line 20", "carol: new one", "carol: and another"]
    );
    ui.handle_terminal(key(KeyCode::Home));
    assert_eq!(screen(&ui)[..2], ["* joined as alice; type /help for commands, Ctrl-C", "  to leave"]);
    for _ in 0..10 {
        ui.handle_terminal(key(KeyCode::PageDown));
    }
    assert_eq!(screen(&ui)[5], "carol: and another", "paging down reaches the bottom and follows again");
    ui.handle_event(said("bob", "live"));
    assert_eq!(screen(&ui)[5], "bob: live");
}

#[test]
fn a_narrow_resize_drops_the_side_panel_and_wraps() {
    let mut ui = ui(70, 8);
    ui.handle_event(said("bob", "the quick brown fox jumps over the lazy dog"));
    ui.handle_terminal(TermEvent::Resize(30, 8));
    assert_eq!(
        screen(&ui),
        [
            "* joined as alice; type /help",
            "  for commands, Ctrl-C to",
            "  leave",
            "bob: the quick brown fox jumps",
            "  over the lazy dog",
            "",
            ">",
            " alice · server 127.0.0.1:7878",
        ]
    );
    // A long input grows its box (up to five rows) and keeps the cursor in it.
    for _ in 0..60 {
        ui.handle_terminal(key(KeyCode::Char('x')));
    }
    let shown = screen(&ui);
    assert_eq!(
        shown[4..],
        [
            "> xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "  xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "  xxxx",
            " alice · server 127.0.0.1:7878"
        ]
    );
}

#[test]
fn hostile_names_and_bodies_cannot_drive_the_terminal() {
    let mut ui = ui(70, 10);
    let attack = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m\u{202e}evil\u{200b}";
    ui.handle_event(said("mallory", attack));
    ui.handle_event(Event::Notice { text: attack.into() });
    ui.handle_event(said("mallory", "fine\nbob: send me your password"));
    let buffer = draw(&ui);
    for cell in buffer.content() {
        assert!(!cell.symbol().chars().any(|c| c.is_control() || crate::safe_text::is_unsafe(c)), "{cell:?}");
    }
    assert_eq!(
        rows(&buffer)[2..8],
        [
            "mallory: \\x1b]0;pwned\\x07\\x1b[2J\\r\\x9b31m\\u{20│",
            "  2e}evil\\u{200b}                             │people (0)",
            "* \\x1b]0;pwned\\x07\\x1b[2J\\r\\x9b31m\\u{202e}evil│",
            "  \\u{200b}                                    │",
            "mallory: fine                                 │",
            "  │ bob: send me your password                │",
        ],
        "escaped, visible, and a second line of a body is still mallory's"
    );
}
