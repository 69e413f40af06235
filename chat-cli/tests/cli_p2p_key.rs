//! P2P node keys through the real binary: in a group with a secret a user's identity is the key in
//! its key file (`--key-file`, or `$XDG_DATA_HOME/chat-cli/p2p-keys/NAME.key` by default), so a user
//! who crashes and starts again collects what was kept for them, exactly once and in order, while a
//! process with the secret but another key file collects nothing. A key file that others may read,
//! a malformed or a truncated one is refused (exit 1, naming the file) and never replaced.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Proc;

/// Multicast groups of this file: loopback only, ports no other test uses.
const GROUP: &str = "239.255.77.78:47761";
const GROUP_REFUSED: &str = "239.255.77.78:47762";

/// A node of `group` with fast failure detection, `extra` flags and `XDG_DATA_HOME` = `data`.
fn node(name: &str, group: &str, data: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["--mode", "p2p", "--json", "--name", name, "--group", group];
    args.extend(["--heartbeat-ms", "50", "--timeout-ms", "300"]);
    args.extend(extra);
    common::spawn_with_env(name, &args, &[("XDG_DATA_HOME", data.to_str().expect("UTF-8"))])
}

/// Reads `p`'s events until it has been quiet for 300 ms (bounded: 50 reads).
fn drain(p: &mut Proc) {
    for _ in 0..50 {
        if p.event_within(Duration::from_millis(300)).is_none() {
            return;
        }
    }
}

fn texts(p: &Proc) -> Vec<String> {
    p.seen.iter().filter(|e| e["type"] == "message").filter_map(|e| e["text"].as_str().map(String::from)).collect()
}

/// `chat-cli ARGS` to its end, with `XDG_DATA_HOME` = `data`: exit code and standard error.
fn run(data: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(args)
        .env("XDG_DATA_HOME", data)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("chat-cli runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn secret_new(path: &Path) {
    let (code, stderr) = run(path.parent().expect("a dir"), &["secret", "new", path.to_str().expect("UTF-8")]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_user_restarted_with_its_key_collects_what_was_kept_and_another_key_does_not() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (secret, data) = (dir.path().join("group.secret"), dir.path().join("data"));
    secret_new(&secret);
    let secret = ["--secret-file", secret.to_str().expect("UTF-8")];
    let mut alice = node("alice", GROUP, &data, &secret);
    alice.event_of("ready");
    // Bob uses the default key file (no flag): made on first use, private.
    let bob_key = data.join("chat-cli").join("p2p-keys").join("bob.key");
    let mut bob = node("bob", GROUP, &data, &secret);
    bob.event_of("ready");
    alice.wait_for("joined", |e| e["name"] == "bob");
    let key_text = std::fs::read_to_string(&bob_key).expect("bob's key file was made");
    assert_eq!(std::fs::metadata(&bob_key).expect("a file").permissions().mode() & 0o777, 0o600);

    // Bob's process is killed; what alice sends him meanwhile is kept.
    let killed = Command::new("kill").args(["-KILL", &bob.pid().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    drop(bob);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());
    for text in ["first while away", "second while away"] {
        alice.say(&format!("/msg bob {text}"));
        let sent = alice.event_of("sent");
        assert_eq!(sent["queued"], serde_json::json!(["bob"]), "{sent}");
    }

    // Mallory holds the secret and takes the free name, with her own key file: she gets nothing.
    let mallory_key = dir.path().join("mallory.key");
    let mut mallory =
        node("bob", GROUP, &data, &[&secret[..], &["--key-file", mallory_key.to_str().expect("UTF-8")]].concat());
    mallory.event_of("ready");
    alice.wait_for("joined", |e| e["name"] == "bob");
    mallory.say("/peers");
    mallory.event_of("peers");
    drain(&mut mallory);
    assert!(texts(&mallory).is_empty(), "collected by another key: {:?}", mallory.seen);
    assert_ne!(std::fs::read_to_string(&mallory_key).expect("her own file"), key_text);
    assert_eq!(mallory.finish(), 0);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());

    // Bob starts again, same name, same (default) key file: the kept messages, in order, once.
    let mut bob = node("bob", GROUP, &data, &secret);
    bob.event_of("ready");
    bob.wait_for("message", |e| e["text"] == "second while away");
    bob.say("/peers");
    bob.event_of("peers");
    drain(&mut bob);
    assert_eq!(texts(&bob), ["first while away", "second while away"], "{:?}", bob.seen);
    let first = bob.seen.iter().find(|e| e["type"] == "message").expect("a message");
    assert_eq!((first["kind"].as_str(), first["from"].as_str()), (Some("unicast"), Some("alice")), "{first}");
    assert_eq!(std::fs::read_to_string(&bob_key).expect("still there"), key_text, "the key file is never rewritten");

    // Collected means gone: a third start brings nothing again.
    assert_eq!(bob.finish(), 0);
    alice.wait_for("left", |e| e["name"] == "bob" && e["room"].is_null());
    let mut bob = node("bob", GROUP, &data, &secret);
    bob.event_of("ready");
    bob.say("/peers");
    bob.event_of("peers");
    drain(&mut bob);
    assert!(texts(&bob).is_empty(), "delivered again: {:?}", bob.seen);
}

#[test]
fn open_malformed_or_truncated_key_files_are_refused_and_kept() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (secret, data) = (dir.path().join("group.secret"), dir.path().join("data"));
    secret_new(&secret);
    let secret = secret.to_str().expect("UTF-8");
    let key = dir.path().join("zed.key");
    let key_flag = key.to_str().expect("UTF-8");
    let join =
        ["--mode", "p2p", "--name", "zed", "--group", GROUP_REFUSED, "--secret-file", secret, "--key-file", key_flag];

    // A good file, made by a first start (the node is then stopped).
    let mut zed = node("zed", GROUP_REFUSED, &data, &join[6..]);
    zed.event_of("ready");
    assert_eq!(zed.finish(), 0);
    let good = std::fs::read_to_string(&key).expect("made");
    let hex = good.lines().last().expect("the key line").to_string();

    let refusals: [(&str, String, u32, &str); 5] = [
        ("world-readable", good.clone(), 0o644, "mode 0644"),
        ("group-writable", good.clone(), 0o620, "mode 0620"),
        ("truncated", format!("{}\n", &hex[..40]), 0o600, "not 64 hex digits"),
        ("malformed", format!("{}\n", hex.replace(|c: char| c.is_ascii_digit(), "x")), 0o600, "not 64 hex digits"),
        ("zeroed", format!("{}\n", "0".repeat(64)), 0o600, "all zeros"),
    ];
    for (what, text, mode, reason) in refusals {
        std::fs::write(&key, &text).expect("written");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        for args in [&join[..], &[&join[..], &["send", "hi"]].concat()] {
            let (code, stderr) = run(&data, args);
            assert_eq!(code, 1, "{what}: {stderr}");
            assert!(stderr.contains(key_flag) && stderr.contains(reason), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        }
        assert_eq!(std::fs::read_to_string(&key).expect("kept"), text, "{what}: never replaced");
    }
    // A key file without a secret, or in server mode, is a usage error.
    let (code, stderr) = run(&data, &["--mode", "p2p", "--name", "zed", "--key-file", key_flag]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--secret-file"), "{stderr}");
    let (code, stderr) = run(&data, &["--name", "zed", "--server", "127.0.0.1:1", "--key-file", key_flag]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--mode p2p"), "{stderr}");
}
