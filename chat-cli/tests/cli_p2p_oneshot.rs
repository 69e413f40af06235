//! `chat-cli send` and `chat-cli tail` in P2P mode through the real binary: a one-shot joins the
//! group as a transient (quiet) member, so nobody sees it come or go and `/peers` never lists it;
//! `send` exits 0 only once its message is acknowledged (ordered and held by every member, `queued`
//! for a member who left) and 1 when it is refused (a name nobody knows, a room it is not in) or when
//! no group answers (a one-shot never founds one); `tail` prints history and live messages until
//! SIGTERM.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Proc;
use serde_json::Value;

/// Multicast groups of this file: loopback only, ports no other test uses.
const GROUP: &str = "239.255.77.79:47753";
const EMPTY_GROUP: &str = "239.255.77.79:47754";

/// The P2P flags every process of this file uses on `group`.
fn p2p(group: &str) -> Vec<&str> {
    vec!["--mode", "p2p", "--json", "--group", group, "--heartbeat-ms", "50", "--timeout-ms", "300"]
}

/// Runs a one-shot `chat-cli ARGS` to its end (a bounded wait: it has a join timeout).
fn one_shot(group: &str, args: &[&str]) -> Output {
    let mut all = p2p(group);
    all.extend(args);
    Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(&all).stdin(Stdio::null()).output().expect("chat-cli runs")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect()
}

fn node(name: &str) -> Proc {
    let mut args = p2p(GROUP);
    args.extend(["--name", name]);
    common::spawn(name, &args)
}

/// The names `p` was told joined or left (of the group, not of a room).
fn comings_and_goings(p: &Proc) -> Vec<String> {
    p.seen
        .iter()
        .filter(|e| (e["type"] == "joined" || e["type"] == "left") && e["room"].is_null())
        .filter_map(|e| e["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn one_shots_are_quiet_transient_members_acknowledged_before_exit_0() {
    let mut alice = node("alice");
    alice.event_of("ready");
    let mut bob = node("bob");
    bob.event_of("ready");
    alice.wait_for("joined", |e| e["name"] == "bob");
    alice.say("/join #ops");
    alice.event_of("history");
    alice.say("/all before the tail");
    bob.wait_for("message", |e| e["text"] == "before the tail");

    // tail: the recent history, then what arrives, until SIGTERM (exit 0).
    let mut args = p2p(GROUP);
    args.extend(["--name", "watcher", "tail", "--history", "5"]);
    let mut tail = common::spawn("tail", &args);
    let history = tail.event_of("history");
    let texts: Vec<&str> =
        history["messages"].as_array().expect("a list").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["before the tail"], "{history}");

    // send: exit 0 with the acknowledgement; bob and the tail get it.
    let out = one_shot(GROUP, &["--name", "bot", "send", "--to", "bob", "hello", "from", "a", "script"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let sent = json_lines(&out);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["type"], "sent");
    let m = bob.wait_for("message", |e| e["text"] == "hello from a script");
    assert_eq!((m["from"].as_str(), m["id"].clone()), (Some("bot"), sent[0]["id"].clone()));
    alice.say("/all live");
    tail.wait_for("message", |e| e["text"] == "live");
    assert!(!tail.seen.iter().any(|e| e["text"] == "hello from a script"), "the tail saw bob's direct message");

    // Refused: a name nobody ever held, a room the one-shot is not in; exit 1, one line on stderr.
    for args in [["--to", "zed", "?"], ["--room", "#ops", "?"]] {
        let mut all = vec!["--name", "bot", "send"];
        all.extend(args);
        let out = one_shot(GROUP, &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "{args:?}");
        let code = json_lines(&out).iter().find(|e| e["type"] == "error").map(|e| e["code"].clone());
        let expected = if args[0] == "--to" { "unknown_user" } else { "not_member" };
        assert_eq!(code, Some(Value::from(expected)), "{args:?}");
    }
    // A name a live member holds: refused too.
    let out = one_shot(GROUP, &["--name", "alice", "send", "impostor"]);
    assert_eq!(out.status.code(), Some(1));

    // A member who left: the one-shot's message is kept for her (queued), and acknowledged.
    assert_eq!(bob.finish(), 0);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());
    let out = one_shot(GROUP, &["--name", "bot", "send", "--to", "bob", "kept"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_lines(&out)[0]["queued"], serde_json::json!(["bob"]));

    // Nobody was told of a one-shot, and /peers never lists one (the tail is still a member).
    alice.say("/peers");
    let peers = alice.event_of("peers");
    let names: Vec<&str> =
        peers["peers"].as_array().expect("a list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["alice"], "{peers}");
    assert_eq!(comings_and_goings(&alice), ["bob", "bob"], "{:?}", alice.seen);
    assert_eq!(tail.terminate(), 0);
}

#[test]
fn a_one_shot_with_no_group_to_join_fails_and_founds_none() {
    let started = Instant::now();
    let out = one_shot(EMPTY_GROUP, &["--name", "bot", "send", "anyone?"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no group found"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
