//! Cross-process: accounts shared by the instances of a cluster (`serve --cluster --auth accounts`),
//! changed with `chat-cli account … --cluster` through the shared log, on a 3-node NATS JetStream
//! cluster the test starts itself (skipped, saying why, when nats-server cannot be installed).

#[allow(dead_code)] // shared helpers: this file uses some of them
mod common;
#[allow(dead_code)]
#[path = "common/nats.rs"]
mod nats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Proc;
use nats::Instance;

/// `chat-cli account ARGS --cluster URL`, the password (if any) on standard input.
fn account_cmd(args: &[&str], url: &str, password: Option<&str>) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .arg("account")
        .args(args)
        .args(["--cluster", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(password) = password {
        writeln!(stdin, "{password}").unwrap();
    }
    drop(stdin);
    child
}

fn account(args: &[&str], url: &str, password: Option<&str>) -> Output {
    account_cmd(args, url, password).wait_with_output().unwrap()
}

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A file holding `secret` (what `--password-file` / `--token-file` read).
fn secret_file(dir: &Path, file: &str, secret: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// `name` logging in at `addr` with `--password-file` / `--token-file` `file` (or nothing): its first event.
fn login(name: &str, addr: &str, credential: Option<(&str, &Path)>) -> (Proc, serde_json::Value) {
    let mut args = vec!["--json", "--name", name, "--server", addr, "--no-reconnect"];
    if let Some((flag, file)) = credential {
        args.extend([flag, file.to_str().unwrap()]);
    }
    let mut p = common::spawn(name, &args);
    let first = p.event();
    (p, first)
}

#[test]
fn accounts_are_shared_by_every_instance_through_the_log_and_survive_a_restart_of_everything() {
    let Some(mut nats) = nats::cluster_or_skip("accounts_are_shared_by_every_instance") else { return };
    let urls = nats.urls();
    let node: Vec<&str> = urls.split(',').collect();
    let dir = tempfile::tempdir().unwrap();
    let accounts = ["--auth", "accounts"];
    let a = Instance::start(&urls, "127.0.0.1:0", &accounts);
    let b = Instance::start(&urls, "127.0.0.1:0", &accounts);

    // Two administrators register alice at once, through different NATS nodes: exactly one wins,
    // the other is refused in the words a single server uses.
    let passwords = ["first horse battery", "second horse battery"];
    let racing: Vec<_> = (0..2).map(|i| account_cmd(&["add", "alice"], node[i], Some(passwords[i]))).collect();
    let outcomes: Vec<Output> = racing.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let won: Vec<usize> = (0..2).filter(|i| outcomes[*i].status.success()).collect();
    assert_eq!(won.len(), 1, "exactly one registration wins: {:?}", outcomes.iter().map(said).collect::<Vec<_>>());
    let (winner, loser) = (passwords[won[0]], passwords[1 - won[0]]);
    let refusal = said(&outcomes[1 - won[0]]);
    assert!(refusal.contains("alice is registered already"), "{refusal}");
    assert!(said(&outcomes[won[0]]).contains("alice is registered"));

    // Registered through the log, alice logs in on either instance with the winning password.
    let good = secret_file(dir.path(), "good", winner);
    let (alice, first) = login("alice", &b.addr, Some(("--password-file", &good)));
    assert_eq!(first["type"], "ready", "{first}");
    // Wrong passwords through the other instance, the losing one included, and no credential: refused.
    for (file, secret) in [("lost", loser), ("wrong", "wrong horse battery")] {
        let wrong = secret_file(dir.path(), file, secret);
        let (mallory, first) = login("alice", &a.addr, Some(("--password-file", &wrong)));
        assert_eq!(first["code"], "auth_failed", "{secret}: {first}");
        assert_ne!(mallory.finish(), 0);
    }
    let (_, first) = login("alice", &a.addr, None);
    assert_eq!(first["code"], "auth_failed", "{first}");
    let (_, first) = login("nobody", &a.addr, Some(("--password-file", &good)));
    assert_eq!(first["code"], "auth_failed", "an unknown name: {first}");

    // A token issued through the log works on the other instance (alice is online: name_taken).
    let issued = account(&["token", "alice"], node[2], None);
    assert!(issued.status.success(), "{}", said(&issued));
    let token = String::from_utf8(issued.stdout.clone()).unwrap().trim().to_string();
    assert!(token.starts_with("chat_"), "{token}");
    let token_file = secret_file(dir.path(), "token", &token);
    let (_, first) = login("alice", &a.addr, Some(("--token-file", &token_file)));
    assert_eq!(first["code"], "name_taken", "the token is right, the name is in use: {first}");
    assert_eq!(alice.finish(), 0);

    // A new password: the old one is refused, the new one admitted, on both instances.
    let changed = account(&["passwd", "alice"], node[1], Some("third horse battery"));
    assert!(changed.status.success(), "{}", said(&changed));
    let (_, first) = login("alice", &a.addr, Some(("--password-file", &good)));
    assert_eq!(first["code"], "auth_failed", "the old password: {first}");
    let third = secret_file(dir.path(), "third", "third horse battery");
    let (alice, first) = login("alice", &a.addr, Some(("--password-file", &third)));
    assert_eq!(first["type"], "ready", "{first}");
    assert_eq!(alice.finish(), 0);
    // Refusals of the tool, as with a data directory.
    let short = account(&["add", "bob"], node[0], Some("short"));
    assert!(!short.status.success() && said(&short).contains("at least 8 characters"), "{}", said(&short));
    let missing = account(&["passwd", "carol"], node[0], Some("fourth horse battery"));
    assert!(!missing.status.success() && said(&missing).contains("no account carol"), "{}", said(&missing));
    let added = account(&["add", "bob"], node[0], Some("bob's horse battery"));
    assert!(added.status.success(), "{}", said(&added));
    let removed = account(&["remove", "bob"], node[0], None);
    assert!(removed.status.success(), "{}", said(&removed));

    // No password or token in the stream: only argon2id hashes and the token's SHA-256.
    let shown = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["log", "show", "--json", "--cluster", &urls])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", said(&shown));
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.matches("$argon2id$").count() >= 4, "the hashes are there: {shown}");
    for secret in [passwords[0], passwords[1], "third horse battery", "bob's horse battery", &token[..]] {
        assert!(!shown.contains(secret), "{secret:?} is in the log");
    }
    let lines = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["log", "show", "--cluster", &urls]).output();
    let lines = String::from_utf8(lines.unwrap().stdout).unwrap();
    let changes: Vec<&str> = lines.lines().filter(|l| l.starts_with("ACCOUNT")).collect();
    assert!(changes.contains(&"ACCOUNT REGISTER alice") && changes.contains(&"ACCOUNT REMOVE bob"), "{lines}");
    assert!(!lines.contains("$argon2id$"), "the lines show no hash: {lines}");
    let verified = Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(["log", "verify", "--cluster", &urls]).output();
    assert!(verified.as_ref().unwrap().status.success(), "{}", said(&verified.unwrap()));

    // A password user whose instance dies resumes on the other one (the credential is checked there).
    let both = format!("{},{}", a.addr, b.addr);
    let password_file = third.to_str().unwrap();
    let mut alice =
        common::spawn("alice", &["--json", "--name", "alice", "--server", &both, "--password-file", password_file]);
    alice.event_of("ready");
    alice.say("before");
    assert_eq!(alice.event_of("message")["text"], "before");
    a.kill();
    alice.event_of("resumed");
    alice.say("after");
    assert_eq!(alice.event_of("message")["text"], "after");
    assert_eq!(alice.finish(), 0);

    // Everything stops (instances and NATS) and starts again: the accounts are still there.
    assert_eq!(b.terminate(), Some(0));
    nats.stop_all();
    nats.start_all();
    let c = Instance::start(&urls, "127.0.0.1:0", &accounts);
    let listed = account(&["list"], node[0], None);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "alice\n", "{}", said(&listed));
    let (alice, first) = login("alice", &c.addr, Some(("--password-file", &third)));
    assert_eq!(first["type"], "ready", "{first}");
    assert_eq!(alice.finish(), 0);
    assert_eq!(c.terminate(), Some(0));
}

/// One NATS node that requires a user and password (and its JetStream store), stopped when dropped.
struct SecuredNats(std::process::Child, tempfile::TempDir, u16);

impl SecuredNats {
    /// Starts the node on a free port and waits until it accepts connections. The port is found by
    /// binding and releasing it, so another socket may take it first: the node then exits, and it
    /// is started again on another port (at most three times).
    fn start(bin: &std::path::Path) -> SecuredNats {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let config = dir.path().join("n.conf");
            let store = dir.path().join("store");
            let conf = format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\nauthorization {{ user: chat, password: s3cret }}\n",
                store.display()
            );
            std::fs::write(&config, conf).unwrap();
            let mut child =
                Command::new(bin).arg("-c").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            let deadline = std::time::Instant::now() + common::WAIT;
            while child.try_wait().unwrap().is_none() {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return SecuredNats(child, dir, port);
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("nats-server did not start");
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // It exited: its port was taken meanwhile. Another port.
        }
        panic!("nats-server exited on three free ports")
    }
}

impl Drop for SecuredNats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_account_tool_reaches_a_nats_that_requires_credentials_and_is_refused_without_them() {
    let bin = match nats::nats_server() {
        Ok(bin) => bin,
        Err(reason) => return println!("skipped: nats-server cannot be installed: {reason}"),
    };
    let nats = SecuredNats::start(&bin);
    let url = format!("nats://127.0.0.1:{}", nats.2);
    let user = ["--cluster-user", "chat:s3cret"];
    let a =
        Instance::start(&url, "127.0.0.1:0", &[&["--auth", "accounts", "--cluster-replicas", "1"][..], &user].concat());
    // Without the NATS user, or with a wrong password: the tool cannot publish anything.
    for access in [&[][..], &["--cluster-user", "chat:guess"]] {
        let mut args = vec!["add", "alice"];
        args.extend(access);
        let out = account(&args, &url, Some("alice's horse battery"));
        assert_eq!(out.status.code(), Some(1), "{}", said(&out));
        assert!(said(&out).contains("cannot connect") || said(&out).contains("authorization"), "{}", said(&out));
    }
    let listed = account(&["list", "--cluster-user", "chat:s3cret"], &url, None);
    assert!(listed.status.success() && listed.stdout.is_empty(), "nobody registered: {}", said(&listed));
    let added = account(&["add", "alice", "--cluster-user", "chat:s3cret"], &url, Some("alice's horse battery"));
    assert!(added.status.success(), "{}", said(&added));
    let password = secret_file(nats.1.path(), "password", "alice's horse battery");
    let (alice, first) = login("alice", &a.addr, Some(("--password-file", &password)));
    assert_eq!(first["type"], "ready", "{first}");
    assert_eq!(alice.finish(), 0);
    assert_eq!(a.terminate(), Some(0));
}
