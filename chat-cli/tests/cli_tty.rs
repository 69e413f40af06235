//! Cross-process, on a pseudo-terminal: the full-screen client and the line mode (`--plain`) as a
//! person uses them. Someone types, the screen is read, and after every way of leaving (`/quit`,
//! `exit`, Ctrl-C, Ctrl-D, SIGTERM, a server shutdown, a lost connection) the shell finds its
//! terminal as it was: echo, line editing, signals, the normal screen, a visible cursor.
//! And the line mode sends a 4,500-character line, and each line of a paste, when Enter arrives.

mod common;
mod tty;

use tty::{Served, Tty, signal};

fn state() -> tempfile::TempDir {
    tempfile::tempdir().expect("a state directory")
}

/// A JSON client that reads what others say (stdin stays open).
fn listener(addr: &str, name: &str) -> common::Proc {
    let mut p = common::spawn(name, &["--json", "--name", name, "--server", addr]);
    p.event_of("ready");
    p
}

/// The text of the next message `p` receives from someone else.
fn next_text(p: &mut common::Proc) -> String {
    loop {
        let m = p.event_of("message");
        if m["from"] != p.name.as_str() {
            return m["text"].as_str().expect("text").to_string();
        }
    }
}

#[test]
fn a_person_chats_in_the_full_screen_client_and_quits() {
    let server = Served::start("127.0.0.1:0", &["--no-log"]);
    let mut bob = listener(&server.addr, "bob");
    let dir = state();
    let mut alice = Tty::spawn(&["--name", "alice", "--server", &server.addr], dir.path());
    let screen = alice.wait_for("alice · server");
    assert!(screen.contains("connected"), "{screen}");
    alice.send(b"hello bob\r");
    assert_eq!(next_text(&mut bob), "hello bob");
    bob.say("hi alice, welcome");
    alice.wait_for("bob: hi alice, welcome");
    // A bracketed paste of two lines is one message.
    alice.send(b"\x1b[200~first line\nsecond line\x1b[201~\r");
    assert_eq!(next_text(&mut bob), "first line\nsecond line");
    alice.wait_for("│ second line");
    alice.send(b"/join #ops\r");
    alice.wait_for("#ops> ");
    // Narrower than 60 columns the side panel goes and lines wrap; wider again, it is back.
    alice.resize(20, 40);
    let narrow = alice.wait_for_bottom_rows(&["#ops> ", " alice · server"]);
    assert!(!narrow.contains("rooms") && !narrow.contains('│'), "{narrow}");
    alice.resize(24, 80);
    alice.wait_for("▸ #ops");
    alice.send(b"/quit\r");
    let left = alice.left();
    assert_eq!(left.code, 0);
    left.assert_sane("/quit");
    assert_eq!(bob.event_of("left")["name"], "alice", "she left cleanly");
    // The input history is kept for the next run, readable by her only.
    let history = dir.path().join("chat-cli").join("history");
    let kept = std::fs::read_to_string(&history).expect("a history file");
    assert!(kept.lines().eq(["hello bob", "first line\\nsecond line", "/join #ops", "/quit"]), "{kept:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&history).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let mut again = Tty::spawn(&["--name", "alice", "--server", &server.addr], dir.path());
    again.wait_for("alice · server");
    again.send(b"\x1b[A\x1b[A");
    again.wait_for("> /join #ops");
    again.send(b"\x1b[A");
    again.wait_for("> first line");
    // Back down to the empty draft, where Ctrl-D leaves.
    again.send(b"\x1b[B\x1b[B\x1b[B\x04");
    again.left().assert_sane("Ctrl-D");
}

#[test]
fn every_way_out_of_the_full_screen_client_gives_the_terminal_back() {
    let server = Served::start("127.0.0.1:0", &["--no-log"]);
    let dir = state();
    for (what, keys) in [("Ctrl-C", &b"\x03"[..]), ("Ctrl-D", b"\x04"), ("exit", b"exit\r")] {
        let mut tty = Tty::spawn(&["--name", "carol", "--server", &server.addr], dir.path());
        tty.wait_for("carol · server");
        tty.send(keys);
        let left = tty.left();
        assert_eq!(left.code, 0, "{what}");
        left.assert_sane(what);
    }
    let mut tty = Tty::spawn(&["--name", "dave", "--server", &server.addr], dir.path());
    tty.wait_for("dave · server");
    signal(Tty::pid_of("dave"), "TERM");
    let left = tty.left();
    assert_eq!(left.code, 0, "SIGTERM leaves cleanly");
    left.assert_sane("SIGTERM");
}

/// The server goes (`how`: `TERM` shuts it down, `KILL` just drops every connection); the client
/// says it is reconnecting; the server that comes back on the same address requires accounts, so
/// the session cannot be resumed and ends.
fn the_session_ends_with_the_server(how: &str, plain: bool) {
    let dir = state();
    let data = dir.path().join("data");
    let server = Served::start("127.0.0.1:0", &["--no-log"]);
    let addr = server.addr.clone();
    let mut args = vec!["--name", "erin", "--server", &addr];
    if plain {
        args.push("--plain");
    }
    let mut tty = Tty::spawn(&args, dir.path());
    // (The full-screen client asks who is online first; the chat is idle once it shows them.)
    tty.wait_for(if plain { "joined as erin" } else { "people (1)" });
    server.stop(how);
    tty.wait_for("reconnecting");
    let data = data.to_str().expect("a UTF-8 path");
    let _back = Served::start(&addr, &["--auth", "accounts", "--data-dir", data]);
    let left = tty.left();
    assert_eq!(left.code, 1, "the session was lost");
    left.assert_sane(&format!("server {how}, plain: {plain}"));
    let text = String::from_utf8_lossy(&tty.raw);
    assert!(text.contains("chat-cli: disconnected:"), "the reason is printed after the terminal is back: {text}");
}

#[test]
fn a_server_shutdown_and_a_lost_connection_give_the_terminal_back() {
    for plain in [false, true] {
        the_session_ends_with_the_server("TERM", plain);
        the_session_ends_with_the_server("KILL", plain);
    }
}

#[test]
fn the_line_mode_sends_long_and_pasted_lines_on_enter_and_gives_the_terminal_back() {
    let server = Served::start("127.0.0.1:0", &["--no-log"]);
    let mut bob = listener(&server.addr, "bob");
    let dir = state();
    let mut alice = Tty::spawn(&["--plain", "--name", "alice", "--server", &server.addr], dir.path());
    alice.wait_for("joined as alice");
    let long = "x".repeat(4500);
    alice.send(format!("{long}\r").as_bytes());
    assert_eq!(next_text(&mut bob), long, "a 4,500-character line goes when Enter arrives");
    // A paste arrives as typed keys: every line break in it sends a line.
    alice.send(b"pasted one\rpasted two\r");
    assert_eq!(next_text(&mut bob), "pasted one");
    assert_eq!(next_text(&mut bob), "pasted two");
    let body = "y".repeat(chat_core::MAX_BODY_LEN);
    alice.send(format!("{body}\r").as_bytes());
    assert_eq!(next_text(&mut bob).len(), chat_core::MAX_BODY_LEN, "up to the body limit");
    bob.say("hi alice");
    alice.wait_for("[bob]: hi alice");
    alice.send(b"/quit\r");
    let left = alice.left();
    assert_eq!(left.code, 0);
    left.assert_sane("/quit");
    for (what, keys) in [("exit", &b"exit\r"[..]), ("Ctrl-C", b"\x03"), ("Ctrl-D", b"\x04")] {
        let mut tty = Tty::spawn(&["--plain", "--name", "carol", "--server", &server.addr], dir.path());
        tty.wait_for("joined as carol");
        tty.send(keys);
        let left = tty.left();
        assert_eq!(left.code, 0, "{what}");
        left.assert_sane(what);
    }
    let mut tty = Tty::spawn(&["--plain", "--name", "dave", "--server", &server.addr], dir.path());
    tty.wait_for("joined as dave");
    signal(Tty::pid_of("dave"), "TERM");
    let left = tty.left();
    assert_eq!(left.code, 0);
    left.assert_sane("SIGTERM");
}
