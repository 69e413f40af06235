//! TLS and accounts through the real binary: `account` manages the accounts file, `serve --tls
//! self-signed --auth accounts` prints its fingerprint and admits only account holders, clients pin
//! it, and a server refuses to listen beyond loopback without TLS and accounts.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::spawn;

fn chat_cli(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    // Bounded: a child that hangs is killed and the test fails on its output.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_tls_server_with_accounts_admits_account_holders_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // The password from standard input (not a terminal); the file is private.
    let added = chat_cli(&["account", "add", "alice", "--data-dir", data], "correct horse battery\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let listed = chat_cli(&["account", "list", "--data-dir", data], "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "alice\n");
    let token = chat_cli(&["account", "token", "alice", "--data-dir", data], "");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("chat_"), "{token}");

    let mut server = spawn(
        "server",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--json",
            "--tls",
            "self-signed",
            "--auth",
            "accounts",
        ],
    );
    let listening = server.event_of("listening");
    let addr = listening["addr"].as_str().unwrap().to_string();
    let fingerprint = listening["fingerprint"].as_str().unwrap().to_string();
    assert!(fingerprint.starts_with("SHA256:") && fingerprint.len() == 71, "{fingerprint}");

    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse battery\n").unwrap();
    let pin = ["--tls", "--tls-fingerprint", &fingerprint];
    let mut alice = spawn(
        "alice",
        &[&pin[..], &["--json", "--name", "alice", "--server", &addr, "--password-file", password.to_str().unwrap()]]
            .concat(),
    );
    alice.event_of("ready");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut bot = spawn(
        "bot",
        &[&pin[..], &["--json", "--name", "alice", "--server", &addr, "--token-file", token_file.to_str().unwrap()]]
            .concat(),
    );
    // alice is online already: the token is right, but the name is in use.
    assert_eq!(bot.event_of("error")["code"], "name_taken");

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "wrong horse battery\n").unwrap();
    let mut mallory = spawn(
        "mallory",
        &[&pin[..], &["--json", "--name", "alice", "--server", &addr, "--password-file", wrong.to_str().unwrap()]]
            .concat(),
    );
    assert_eq!(mallory.event_of("error")["code"], "auth_failed");
    assert_ne!(mallory.finish(), 0);
    let mut anonymous = spawn("anonymous", &[&pin[..], &["--json", "--name", "zed", "--server", &addr]].concat());
    assert_eq!(anonymous.event_of("error")["code"], "auth_failed");

    // A plaintext client is told, in one line, to use TLS.
    let plain = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["--name", "zed", "--server", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(stderr.trim(), "chat-cli: this server requires TLS: connect with --tls");
    drop(alice);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn a_server_beyond_loopback_needs_tls_and_accounts_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir", data.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without TLS and accounts") && stderr.contains("--tls self-signed"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir", data.to_str().unwrap(), "--tls", "self-signed"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without accounts"));
}
