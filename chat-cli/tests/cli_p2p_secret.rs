//! P2P groups with a secret through the real binary: `chat-cli secret new` makes the file, nodes
//! holding it chat, a node with another secret or none is refused with `auth_failed` (one line, exit
//! 1), and a non-loopback `--listen` or `--interface` needs a secret or `--insecure` (exit 2).
//!
//! Only loopback is used: `--interface 192.0.2.7` (a documentation address, on no interface) is
//! refused before anything is bound; `--listen 0.0.0.0:0` binds a listener on every interface but
//! the node advertises 127.0.0.1 and multicasts on loopback, so no traffic leaves the machine.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, WAIT};

/// Multicast groups of this file: loopback only, ports no other test uses.
const GROUP: &str = "239.255.77.77:47741";
const LONE_GROUP: &str = "239.255.77.77:47742";

fn node(name: &str, group: &str, secret: Option<&Path>) -> Proc {
    let mut args = vec!["--mode", "p2p", "--json", "--name", name, "--group", group, "--heartbeat-ms", "50"];
    let secret = secret.map(|p| p.to_str().expect("a UTF-8 path").to_string());
    if let Some(file) = &secret {
        args.extend(["--secret-file", file.as_str()]);
    }
    common::spawn(name, &args)
}

/// Runs `chat-cli ARGS` with no input until it exits (bounded); exit code, stdout, stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(args)
        .env("XDG_DATA_HOME", common::data_home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat-cli starts");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat-cli {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8");
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

fn secret_new(path: &Path) -> String {
    let (code, stdout, stderr) = run(&["secret", "new", path.to_str().expect("UTF-8")]);
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_string()
}

/// Polls `/peers` until every process lists the three members and the same coordinator.
fn agreed(procs: &mut [&mut Proc]) {
    for _ in 0..100 {
        let mut views = Vec::new();
        for p in procs.iter_mut() {
            p.say("/peers");
            let peers = p.event_of("peers");
            let list = peers["peers"].as_array().cloned().unwrap_or_default();
            let coordinator: Vec<String> =
                list.iter().filter(|p| p["coordinator"] == true).map(|p| p["name"].to_string()).collect();
            views.push((list.len(), coordinator));
        }
        if views.iter().all(|v| v.0 == 3 && v.1.len() == 1 && v.1 == views[0].1) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no agreement");
}

#[test]
fn secret_new_writes_a_private_file_once_and_secret_id_reads_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("group.secret");
    let id = secret_new(&path);
    assert_eq!(id.len(), 16, "{id}");
    assert_eq!(std::fs::metadata(&path).expect("written").permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).expect("readable");
    assert!(text.starts_with("# chat-p2p group secret v1"), "{text}");
    let (code, stdout, _) = run(&["secret", "id", path.to_str().expect("UTF-8")]);
    assert_eq!((code, stdout.trim()), (0, id.as_str()));
    // Never overwritten.
    let (code, _, stderr) = run(&["secret", "new", path.to_str().expect("UTF-8")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).expect("readable"), text);
    // A file others may read is refused before anything starts (a usage error).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, stderr) = run(&["--mode", "p2p", "--name", "x", "--secret-file", path.to_str().expect("UTF-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("mode 0644") && stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn members_with_the_secret_chat_and_others_are_refused_with_auth_failed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ours, theirs) = (dir.path().join("ours.secret"), dir.path().join("theirs.secret"));
    assert_ne!(secret_new(&ours), secret_new(&theirs));
    let mut alice = node("alice", GROUP, Some(&ours));
    alice.event_of("ready");
    let mut bob = node("bob", GROUP, Some(&ours));
    bob.event_of("ready");
    let mut carol = node("carol", GROUP, Some(&ours));
    carol.event_of("ready");
    agreed(&mut [&mut alice, &mut bob, &mut carol]);
    alice.say("only members read this");
    for p in [&mut bob, &mut carol] {
        let m = p.event_of("message");
        assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("alice"), Some("only members read this")));
    }
    carol.say("MSG:bob:psst");
    let m = bob.event_of("message");
    assert_eq!(
        (m["from"].as_str(), m["kind"].as_str(), m["text"].as_str()),
        (Some("carol"), Some("unicast"), Some("psst"))
    );

    // Another secret, or none: one clear line on standard error, the error event, exit 1.
    let theirs = theirs.to_str().expect("UTF-8");
    let base = ["--mode", "p2p", "--json", "--name", "mallory", "--group", GROUP, "--heartbeat-ms", "50"];
    for extra in [&["--secret-file", theirs][..], &[][..]] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].starts_with("chat-cli: join refused (auth_failed):"), "{}", lines[0]);
        let error: serde_json::Value = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|v: &serde_json::Value| v["type"] == "error")
            .expect("an error event");
        assert_eq!(error["code"], "auth_failed", "{error}");
    }

    // The members noticed nothing but keep chatting.
    bob.say("still just us");
    for p in [&mut alice, &mut carol] {
        // Skips what came before (alice's own first message): every wait is bounded.
        while p.event_of("message")["text"] != "still just us" {}
    }
    for p in [alice, bob, carol] {
        assert_eq!(p.finish(), 0);
    }
}

#[test]
fn beyond_loopback_a_node_needs_a_secret_or_insecure() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let secret = dir.path().join("group.secret");
    secret_new(&secret);
    let base = ["--mode", "p2p", "--json", "--name", "zed", "--group", LONE_GROUP];
    for exposed in [["--listen", "0.0.0.0:0"], ["--interface", "192.0.2.7"]] {
        let args: Vec<&str> = base.iter().chain(exposed.iter()).copied().collect();
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("refusing to use") && stderr.contains("--secret-file"), "{stderr}");
    }
    // --insecure, or a secret, lets it start (on every interface, advertising and multicasting on loopback).
    let with_secret = ["--secret-file", secret.to_str().expect("UTF-8")];
    for extra in [&["--insecure"][..], &with_secret[..]] {
        let args: Vec<&str> =
            base.iter().copied().chain(["--listen", "0.0.0.0:0"]).chain(extra.iter().copied()).collect();
        let mut zed = common::spawn("zed", &args);
        zed.event_of("ready");
        assert_eq!(zed.finish(), 0, "{args:?}");
    }
}
