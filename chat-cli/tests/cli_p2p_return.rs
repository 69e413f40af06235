//! P2P users who go away and come back, through the real binary: a message to a member who crashed
//! or left is kept by the group (the sender's `sent` says `queued`) and delivered when a node of that
//! name joins again; the restarted node is in its rooms again (`ready`) and has their history; names
//! never seen stay `unknown_user`. With a group secret, another process taking the free name (with
//! another node key) gets nothing of what was kept; `cli_p2p_key.rs` has the rightful user's return.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Proc;
use serde_json::Value;

/// Multicast groups of this file: loopback only, ports no other test uses.
const GROUP: &str = "239.255.77.79:47751";
const SECRET_GROUP: &str = "239.255.77.79:47752";

/// A node of `group` with fast failure detection and `extra` flags.
fn node(name: &str, group: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--mode", "p2p", "--json", "--name", name, "--group", group];
    args.extend(["--heartbeat-ms", "50", "--timeout-ms", "300"]);
    args.extend(extra);
    common::spawn(name, &args)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[test]
fn a_crashed_user_comes_back_to_its_rooms_its_history_and_what_was_kept_for_it() {
    let mut alice = node("alice", GROUP, &[]);
    alice.event_of("ready");
    let mut bob = node("bob", GROUP, &[]);
    bob.event_of("ready");
    alice.wait_for("joined", |e| e["name"] == "bob");
    bob.say("/join #ops");
    bob.event_of("history");
    alice.say("/join #ops");
    alice.event_of("history");
    alice.say("said in the room");
    bob.wait_for("message", |e| e["text"] == "said in the room");

    // Bob's process is killed: once the group noticed, what alice sends him is kept.
    let killed = Command::new("kill").args(["-KILL", &bob.pid().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    drop(bob);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());
    alice.say("/msg BOB while you were away");
    let sent = alice.event_of("sent");
    assert_eq!((names(&sent["queued"]), names(&sent["unknown"])), (vec!["bob"], vec![]), "{sent}");
    alice.say("/mc bob,zed to both");
    let sent = alice.event_of("sent");
    assert_eq!((names(&sent["queued"]), names(&sent["unknown"])), (vec!["bob"], vec!["zed"]), "{sent}");
    alice.say("/msg zed nobody");
    assert_eq!(alice.event_of("error")["code"], "unknown_user", "a name never seen");
    alice.say("said while bob was away");

    // A new process named bob: in #ops again, the kept messages in order, then the room's history.
    let mut bob = node("bob", GROUP, &[]);
    let ready = bob.event_of("ready");
    assert_eq!(names(&ready["rooms"]), ["#ops"], "{ready}");
    let first = bob.wait_for("message", |e| e["text"] == "while you were away");
    assert_eq!((first["kind"].as_str(), first["from"].as_str()), (Some("unicast"), Some("alice")), "{first}");
    bob.wait_for("message", |e| e["text"] == "to both");
    let order: Vec<&str> =
        bob.seen.iter().filter(|e| e["type"] == "message").filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(order, ["while you were away", "to both"], "kept messages once each, in order");
    bob.say("/history #ops");
    let history = bob.event_of("history");
    let texts: Vec<&str> =
        history["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["said in the room", "said while bob was away"], "{history}");
    // Nothing is kept twice: a second return brings nothing.
    assert_eq!(bob.finish(), 0);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());
    let mut bob = node("bob", GROUP, &[]);
    bob.event_of("ready");
    bob.say("/peers");
    bob.event_of("peers");
    assert!(!bob.seen.iter().any(|e| e["type"] == "message"), "delivered again: {:?}", bob.seen);
}

#[test]
fn with_a_secret_another_process_taking_the_name_collects_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("group.secret");
    let path = file.to_str().expect("UTF-8");
    let status = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["secret", "new", path]).output().expect("runs");
    assert!(status.status.success());
    let secret = ["--secret-file", path];
    let mut alice = node("alice", SECRET_GROUP, &secret);
    alice.event_of("ready");
    let bob_key = dir.path().join("bob.key");
    let bob = node("bob", SECRET_GROUP, &[&secret[..], &["--key-file", bob_key.to_str().expect("UTF-8")]].concat());
    alice.wait_for("joined", |e| e["name"] == "bob");
    assert_eq!(bob.finish(), 0);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());
    alice.say("/msg bob for bob's key only");
    assert_eq!(names(&alice.event_of("sent")["queued"]), ["bob"]);
    // Mallory holds the secret and takes the free name: admitted, but the queue is bound to the key
    // bob's node has (his key file); with another key file she gets nothing, and it still waits (sending to bob now reaches her live).
    let mallory_key = dir.path().join("mallory.key");
    let mallory_key = ["--key-file", mallory_key.to_str().expect("UTF-8")];
    let mut mallory = node("bob", SECRET_GROUP, &[&secret[..], &mallory_key[..]].concat());
    mallory.event_of("ready");
    alice.wait_for("joined", |e| e["name"] == "bob");
    mallory.say("/peers");
    mallory.event_of("peers");
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..50 {
        if mallory.event_within(Duration::from_millis(100)).is_none() {
            break;
        }
    }
    assert!(
        !mallory.seen.iter().any(|e| e["text"] == "for bob's key only"),
        "collected by another key: {:?}",
        mallory.seen
    );
}
