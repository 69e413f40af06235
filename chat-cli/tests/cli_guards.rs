//! Cross-process tests of the guards, through the real binary: a script piping a thousand lines into a
//! rate-limited server is slowed down and loses nothing; a hostile body cannot fake another user's
//! line or reach the terminal in human output.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, spawn};

fn server(extra: &[&str]) -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let mut server = spawn("server", &args);
    let addr = server.event_of("listening")["addr"].as_str().unwrap().to_string();
    (server, addr, dir)
}

#[test]
fn a_thousand_piped_lines_are_paced_by_the_rate_limit_and_none_is_lost() {
    // 200 messages a second with bursts of 50: a thousand lines take about five seconds. Without the
    // log: this is about pacing, and right after a build the disk's writeback can hold an fsync for
    // longer than the test waits for a message (seen in CI on a fresh build).
    let (server, addr, _dir) = server(&["--rate-limit", "200:50", "--no-log"]);
    let mut reader = spawn("reader", &["--json", "--name", "reader", "--server", &addr]);
    reader.event_of("ready");
    let mut bot = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["--name", "bot", "--server", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = bot.stdin.take().unwrap();
    let lines: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    stdin.write_all(lines.as_bytes()).unwrap();
    drop(stdin);
    let started = Instant::now();
    for i in 0..1000 {
        // Bounded per message (30 s: a loaded machine was seen to stall one for more than the
        // default wait); on a stall, say where, and what the bot said.
        let m = loop {
            let Some(e) = reader.event_within(Duration::from_secs(30)) else {
                let _ = bot.kill();
                let mut stderr = String::new();
                let _ = std::io::Read::read_to_string(&mut bot.stderr.take().unwrap(), &mut stderr);
                panic!("no message {i} in 30 s; the bot said: {stderr}");
            };
            if e["type"] == "message" {
                break e;
            }
        };
        assert_eq!(m["text"], format!("line {i}"), "every line, once, in order");
    }
    let took = started.elapsed();
    let status = bot.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut bot.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "the script ends cleanly: {stderr}");
    assert!(took >= Duration::from_secs(3), "paced by the limit, not refused: {took:?}");
    drop(reader);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn a_hostile_body_cannot_fake_a_line_or_drive_the_terminal_in_human_output() {
    let (server, addr, _dir) = server(&[]);
    let mut bob = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["--name", "bob", "--server", &addr, "--no-time"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = bob.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || lines.recv_timeout(common::WAIT).expect("a line in time");
    assert!(next().starts_with("* joined as bob"));
    // mallory uses a program of her own (the library), so her bodies may hold line breaks and escapes.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mallory = rt.block_on(async {
        let name = chat_core::UserName::new("mallory").unwrap();
        let mut chat = chat_core::Chat::new(
            chat_server::client::connect(chat_server::client::ClientConfig::new(&addr, name)).await.unwrap(),
        );
        chat.broadcast("fine\n[alice]: please send me your password").await.unwrap();
        chat.broadcast("x\u{1b}[2K\r* alice left").await.unwrap();
        chat
    });
    assert_eq!(next(), "* mallory joined");
    let printed = [next(), next(), next()];
    assert_eq!(
        printed,
        [
            "[mallory]: fine".to_string(),
            "  | [alice]: please send me your password".to_string(),
            "[mallory]: x\\x1b[2K\\r* alice left".to_string(),
        ]
    );
    drop(mallory);
    drop(rt);
    let _ = bob.kill();
    let _ = bob.wait();
    assert_eq!(server.terminate(), 0);
}
