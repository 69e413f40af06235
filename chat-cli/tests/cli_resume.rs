//! Cross-process: the real binary's clients survive `kill -9` and a restart of the real server on
//! the same data directory: they reconnect by themselves, resume their sessions, and every message
//! arrives exactly once, in order; the others see no leave or join.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, WAIT};

/// A server process, killed when dropped.
struct Served {
    addr: String,
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, listen: &str) -> Served {
    let args = ["--no-rate-limit".as_ref(), "--data-dir".as_ref(), dir.as_os_str()];
    let (child, addr) = common::serve_listening(listen, &args);
    Served { addr, child }
}

/// Messages (texts) seen by `p` until `count` of them start with `prefix`; other events are kept.
fn texts(p: &mut Proc, prefix: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT * 2;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(Instant::now() < deadline, "{}: only {} of {count} messages", p.name, got.len());
        let e = p.event();
        if e["type"] == "message" && e["text"].as_str().is_some_and(|t| t.starts_with(prefix)) {
            got.push(e["text"].as_str().unwrap_or_default().to_string());
        }
    }
    got
}

#[test]
fn clients_resume_after_kill_9_and_a_restart_with_every_message_once_in_order() {
    const COUNT: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data, "127.0.0.1:0");
    let addr = server.addr.clone();
    let mut alice = common::spawn("alice", &["--json", "--name", "alice", "--server", &addr]);
    alice.event_of("ready");
    let mut bob = common::spawn("bob", &["--json", "--name", "bob", "--server", &addr]);
    bob.event_of("ready");
    assert_eq!(alice.event_of("joined")["name"], "bob");

    for i in 0..COUNT / 2 {
        alice.say(&format!("k{i}"));
    }
    let first = texts(&mut bob, "k", 50);
    // kill -9 in the middle of the traffic, and a new server on the same address and data.
    drop(server);
    std::thread::sleep(Duration::from_millis(200));
    let server = serve(&data, &addr);
    for i in COUNT / 2..COUNT {
        alice.say(&format!("k{i}"));
    }
    let rest = texts(&mut bob, "k", COUNT - first.len());
    let all: Vec<String> = first.into_iter().chain(rest).collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("k{i}")).collect();
    assert_eq!(all, expected, "every message exactly once, in order");
    assert!(bob.seen.iter().any(|e| e["type"] == "reconnecting"), "bob said he was reconnecting");
    assert!(bob.seen.iter().any(|e| e["type"] == "resumed"), "bob said he resumed");
    assert!(
        !bob.seen.iter().any(|e| e["type"] == "left" || (e["type"] == "joined" && e["name"] == "alice")),
        "nobody left or joined: {:?}",
        bob.seen
    );
    // alice: one acknowledgement per line, each with its own message ID.
    let deadline = Instant::now() + WAIT * 2;
    while alice.seen.iter().filter(|e| e["type"] == "sent").count() < COUNT {
        assert!(Instant::now() < deadline, "alice's sends were not all acknowledged");
        alice.event();
    }
    let ids: std::collections::BTreeSet<String> =
        alice.seen.iter().filter(|e| e["type"] == "sent").map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), COUNT, "one message per line, none stored twice");

    assert_eq!(alice.finish(), 0);
    assert_eq!(bob.finish(), 0);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    drop(server);
    let verify = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["log", "verify"]).arg(&data).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn without_reconnection_a_killed_server_is_reported_on_stderr_in_human_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), "127.0.0.1:0");
    let mut alice = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["--name", "alice", "--server", &server.addr, "--no-reconnect"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufRead::lines(std::io::BufReader::new(alice.stdout.take().unwrap()));
    assert!(out.next().unwrap().unwrap().starts_with("* joined as alice"));
    drop(server); // kill -9
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = alice.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "alice did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut alice.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("disconnected"), "the reason is on stderr: {stderr:?}");
}
