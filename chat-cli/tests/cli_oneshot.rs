//! Cross-process: the one-shot commands (`send`, `tail`), defaults from the environment, usage
//! errors (exit 2), `log show --json`, rooms and offline messages through the real binary, and the
//! line client's fixes (exact bare words, one-line hints, the error code once).

mod common;

use std::process::{Command, Output, Stdio};

use common::Proc;
use serde_json::Value;

fn chat_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-cli"));
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("chat-cli runs")
}

fn server() -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server =
        common::spawn("server", &["serve", "--listen", "127.0.0.1:0", "--json", "--data-dir", data.to_str().unwrap()]);
    let addr = server.event_of("listening")["addr"].as_str().unwrap().to_string();
    (server, addr, dir)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect()
}

#[test]
fn send_is_acknowledged_quietly_and_tail_prints_what_arrives() {
    let (server, addr, _dir) = server();
    let mut alice = common::spawn("alice", &["--json", "--name", "alice", "--server", &addr]);
    alice.event_of("ready");
    let mut tail = common::spawn("tail", &["tail", "--json", "--name", "watcher", "--server", &addr]);
    // Nobody hears the one-shot sessions arrive: alice's next event is the message itself.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Defaults from the environment: CHAT_SERVER, CHAT_NAME.
    let out =
        chat_cli(&["send", "--json", "hello", "from", "a", "script"], &[("CHAT_SERVER", &addr), ("CHAT_NAME", "bot")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let sent = lines(&out);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0]["type"].as_str(), sent[0]["queued"].as_array().map(Vec::len)), (Some("sent"), Some(0)));
    let m = alice.event();
    assert_eq!(
        (m["type"].as_str(), m["from"].as_str(), m["text"].as_str()),
        (Some("message"), Some("bot"), Some("hello from a script"))
    );
    let t = tail.event_of("message");
    assert_eq!(t["id"], m["id"]);
    // A direct message to someone unknown: refused, exit 1, one line on stderr.
    let out = chat_cli(&["send", "--server", &addr, "--name", "bot", "--to", "zed", "?"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    // A room: the sender must be a member.
    let out = chat_cli(&["send", "--server", &addr, "--name", "bot", "--room", "#ops", "x"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in #ops"), "{}", String::from_utf8_lossy(&out.stderr));
    alice.say("/peers");
    let peers = alice.event_of("peers");
    assert_eq!(peers["peers"], serde_json::json!([{"name": "alice"}]), "quiet sessions are not listed");
    assert!(!alice.seen.iter().any(|e| e["type"] == "joined" || e["type"] == "left"), "{:?}", alice.seen);
    drop(tail);
    assert_eq!(alice.finish(), 0);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let cases: [&[&str]; 5] = [
        &["--name", "bad:name", "--server", "127.0.0.1:7878"],
        &["--name", "x", "--server", "127.0.0.1"],
        &["bench", "--size", "8"],
        &["send", "--name", "x", "--room", "ops", "hi"],
        &["--name", "x", "--time-format", "%Q"],
    ];
    for args in cases {
        let out = chat_cli(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(!stderr.contains("os error") || stderr.matches("os error").count() == 1, "{stderr}");
    }
    // A flag the subcommand does not use is refused (clap's usage error), not ignored; its help omits it.
    let out = chat_cli(&["send", "--name", "x", "--found", "hi"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: --found does not apply to `chat-cli send`"), "{stderr}");
    assert!(stderr.contains("Usage: chat-cli send [OPTIONS] <TEXT>..."), "{stderr}");
    let help = String::from_utf8_lossy(&chat_cli(&["send", "--help"], &[]).stdout).into_owned();
    assert!(help.contains("--server") && !help.contains("--found") && !help.contains("--plain"), "{help}");
    // A P2P flag in server mode is a usage error too (one line, exit 2), not ignored.
    let out = chat_cli(&["send", "--name", "x", "--listen", "127.0.0.1:1", "hi"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--listen is for --mode p2p"), "{stderr}");
}

#[test]
fn rooms_offline_messages_and_the_line_language_through_the_binary() {
    let (server, addr, dir) = server();
    let mut alice = common::spawn("alice", &["--json", "--name", "alice", "--server", &addr]);
    alice.event_of("ready");
    let mut bob = common::spawn("bob", &["--json", "--name", "bob", "--server", &addr]);
    bob.event_of("ready");
    // bob's arrival is announced (a little later: notices are debounced) before the room's events.
    assert_eq!(alice.event_of("joined"), serde_json::json!({"type": "joined", "name": "bob"}));
    alice.say("/join #ops");
    let history = alice.event_of("history");
    assert_eq!((history["room"].as_str(), history["messages"].as_array().map(Vec::len)), (Some("#ops"), Some(0)));
    // The joiner hears its own join too (the room's spelling is its creator's).
    assert_eq!(alice.event_of("joined"), serde_json::json!({"type": "joined", "name": "alice", "room": "#ops"}));
    bob.say("/join #Ops");
    assert_eq!(alice.event_of("joined"), serde_json::json!({"type": "joined", "name": "bob", "room": "#ops"}));
    bob.event_of("history");
    // After /join plain text goes to the room; /all still goes to everyone.
    alice.say("deploy at five");
    let m = bob.event_of("message");
    assert_eq!(
        (m["kind"].as_str(), m["room"].as_str(), m["text"].as_str()),
        (Some("room"), Some("#ops"), Some("deploy at five"))
    );
    assert!(m["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{m}");
    alice.say("/rooms");
    assert_eq!(alice.event_of("rooms")["rooms"], serde_json::json!([{"name": "#ops", "members": 2}]));
    alice.say("/who");
    assert_eq!(alice.event_of("who"), serde_json::json!({"type": "who", "room": "#ops", "names": ["alice", "bob"]}));
    // Bare words are commands only in their exact form.
    alice.say("history is fun");
    let m = bob.event_of("message");
    assert_eq!(m["text"], "history is fun");
    alice.say("/nonsense");
    let e = alice.event_of("error");
    assert_eq!(e["code"], "bad_command");
    assert!(!e["message"].as_str().unwrap().contains("bad_command"), "the code once: {e}");
    // bob leaves; a direct message waits for him and comes at his next login.
    bob.say("/quit");
    assert_eq!(bob.finish(), 0);
    alice.say("/msg bob see you tomorrow");
    let sent = alice.event_of("sent");
    assert_eq!(sent["queued"], serde_json::json!(["bob"]));
    let mut bob = common::spawn("bob", &["--json", "--name", "bob", "--server", &addr]);
    let ready = bob.event_of("ready");
    assert_eq!(ready["rooms"], serde_json::json!(["#ops"]), "memberships outlive sessions");
    let m = bob.event_of("message");
    assert_eq!((m["kind"].as_str(), m["text"].as_str()), (Some("unicast"), Some("see you tomorrow")));
    assert_eq!(alice.finish(), 0);
    assert_eq!(bob.finish(), 0);
    assert_eq!(server.terminate(), 0);
    let data = dir.path().join("data");
    let out = chat_cli(&["log", "show", "--json", data.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let records = lines(&out);
    assert!(records.iter().any(|r| r["record"]["RoomJoin"]["room"] == "#ops"), "{records:?}");
    assert!(records.iter().all(|r| r["offset"].as_u64().is_some()));
    let verify = chat_cli(&["log", "verify", data.to_str().unwrap()], &[]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
