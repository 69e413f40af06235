//! Cross-process tests: the real `chat-cli` binary, a server and three clients, read through `--json`.

mod common;

use std::process::{Command, Stdio};

use common::Proc;

fn spawn(args: &[&str]) -> Proc {
    common::spawn(args.iter().find(|a| !a.starts_with('-')).copied().unwrap_or("chat-cli"), args)
}

#[test]
fn server_and_three_clients_over_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = spawn(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--json"]);
    let listening = server.event();
    assert_eq!(listening["type"], "listening");
    let addr = listening["addr"].as_str().unwrap().to_string();

    // Global flags after the subcommand work too.
    let mut alice = spawn(&["join", "--json", "--name", "alice", "--server", &addr]);
    assert_eq!(alice.event(), serde_json::json!({"type": "ready", "name": "alice", "rooms": []}));
    let mut bob = spawn(&["--json", "--name", "bob", "--server", &addr]);
    bob.event_of("ready");
    let mut carol = spawn(&["--mode", "server", "--json", "--name", "carol", "--server", &addr]);
    carol.event_of("ready");
    assert_eq!(alice.event_of("joined")["name"], "bob");
    assert_eq!(alice.event_of("joined")["name"], "carol");

    alice.say("hello everyone");
    let m = bob.event_of("message");
    assert_eq!(
        (m["from"].as_str(), m["kind"].as_str(), m["text"].as_str()),
        (Some("alice"), Some("broadcast"), Some("hello everyone"))
    );
    assert_eq!(m["to"], serde_json::json!([]));
    assert!(m["lamport"].as_u64().unwrap() > 0);
    assert_eq!(carol.event_of("message")["id"], m["id"]);

    bob.say("MSG:carol:just for you");
    let m = carol.event_of("message");
    assert_eq!((m["kind"].as_str(), m["text"].as_str()), (Some("unicast"), Some("just for you")));
    assert_eq!(m["to"], serde_json::json!(["carol"]));

    carol.say("/mc alice,bob,nobody team");
    let m = alice.event_of("message"); // alice's own broadcast echo comes first
    assert_eq!(m["text"], "hello everyone");
    let m = alice.event_of("message");
    assert_eq!((m["kind"].as_str(), m["text"].as_str()), (Some("multicast"), Some("team")));
    assert_eq!(m["to"], serde_json::json!(["alice", "bob"]));
    let e = carol.event_of("error");
    assert_eq!(e["code"], "unknown_user");
    let sent = carol.event_of("sent");
    assert_eq!((&sent["unknown"], &sent["queued"]), (&serde_json::json!(["nobody"]), &serde_json::json!([])));

    alice.say("/peers");
    let peers = alice.event_of("peers");
    assert_eq!(peers["peers"], serde_json::json!([{"name": "alice"}, {"name": "bob"}, {"name": "carol"}]));
    alice.say("/history 10");
    let history = alice.event_of("history");
    let texts: Vec<&str> =
        history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hello everyone", "team"], "alice must not see bob's direct message to carol");
    alice.say("/nonsense");
    assert_eq!(alice.event_of("error")["code"], "bad_command");

    // A taken name: refused with name_taken and a non-zero exit.
    let mut dup = spawn(&["--json", "--name", "bob", "--server", &addr]);
    // The whole event on a mismatch. Loaded runs used to see `disconnected` here: the writer panicked when
    // the owner forgot the connection before the writer first ran (fanout::writer tests).
    let refused = dup.event_of("error");
    assert_eq!(refused["code"], "name_taken", "{refused}");
    assert_ne!(dup.finish(), 0);

    // Leaving: exit, /quit and end of input all exit 0; the others hear about it.
    bob.say("exit");
    assert_eq!(bob.finish(), 0);
    assert_eq!(alice.event_of("left")["name"], "bob");
    carol.say("/quit");
    assert_eq!(carol.finish(), 0);
    assert_eq!(alice.finish(), 0);

    assert_eq!(server.terminate(), 0, "SIGTERM is a clean shutdown");
    let verify =
        Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["log", "verify", data.to_str().unwrap()]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let show =
        Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["log", "show", data.to_str().unwrap()]).output().unwrap();
    let show = String::from_utf8(show.stdout).unwrap();
    assert!(show.contains("STORE [") && show.contains("BROADCAST FROM alice TO ALL: hello everyone"), "{show}");
    assert!(show.contains("UNICAST BY carol FROM bob: just for you"), "{show}");
}

#[test]
fn usage_errors_exit_2_and_unreachable_server_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["--mode", "nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli")).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no --name and no terminal");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["--mode", "p2p", "--name", "x", "--group", "127.0.0.1:5000"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a group that is not multicast is a usage error");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["--name", "x", "--server", "127.0.0.1:1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one-line reason: {stderr}");
    assert!(out.stdout.is_empty(), "human mode prints the reason on stderr only");
    // A port that is taken: exit 1 with one line that names the cause once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["serve", "--listen", &addr, "--no-log"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("chat-cli: cannot start the server: "), "{stderr}");
    assert_eq!(last.matches("(os error").count(), 1, "the cause once: {last}");
}

#[test]
fn bench_measures_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = spawn(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--json"]);
    let addr = server.event()["addr"].as_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["bench", "--server", &addr, "--subs", "5", "--msgs", "200", "--window", "50", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(summary["type"], "bench");
    assert_eq!(summary["deliveries"], 1000);
    assert_eq!(summary["complete"], true);
    assert!(summary["deliveries_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn above_the_presence_limit_a_notice_replaces_the_joins() {
    let mut server = spawn(&["serve", "--listen", "127.0.0.1:0", "--no-log", "--json", "--presence-limit", "2"]);
    let addr = server.event_of("listening")["addr"].as_str().unwrap().to_string();
    let mut alice = spawn(&["--json", "--name", "alice", "--server", &addr]);
    alice.event_of("ready");
    let mut bob = spawn(&["--json", "--name", "bob", "--server", &addr]);
    bob.event_of("ready");
    assert_eq!(alice.event_of("joined")["name"], "bob");
    let mut carol = spawn(&["--json", "--name", "carol", "--server", &addr]);
    assert_eq!(carol.event_of("ready")["name"], "carol");
    // The third arrival is not announced: one notice says why, and /who still lists everybody.
    let notice = alice.event_of("notice");
    assert!(notice["text"].as_str().unwrap().starts_with("more than 2 people are online"), "{notice}");
    alice.say("/who");
    assert_eq!(alice.event_of("who")["names"], serde_json::json!(["alice", "bob", "carol"]));
    assert!(!alice.seen.iter().any(|e| e["type"] == "joined" && e["name"] == "carol"), "{:?}", alice.seen);
    for p in [alice, bob, carol] {
        assert_eq!(p.finish(), 0);
    }
    server.terminate();
}
