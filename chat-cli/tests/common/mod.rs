//! A real `chat-cli` process driven through standard input and read through `--json`, for the
//! cross-process tests. Every child is killed when its handle is dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest wait for any one event or exit.
pub const WAIT: Duration = Duration::from_secs(15);
/// Lines of a child's standard error kept for failure reports (the last ones).
const STDERR_LINES: usize = 200;

/// A running `chat-cli`; every event it printed is kept in `seen`.
pub struct Proc {
    /// A label for failure messages.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every JSON event read so far.
    pub seen: Vec<Value>,
    /// The last [`STDERR_LINES`] lines it wrote to standard error (its warnings), for failure reports.
    #[allow(dead_code)] // not every test file reports it
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the children of this test process keep their data (P2P node keys): never the user's own.
#[allow(dead_code)] // not every test file uses the shared one
pub fn data_home() -> String {
    format!("{}/xdg-data-{}", env!("CARGO_TARGET_TMPDIR"), std::process::id())
}

/// Starts `chat-cli ARGS` with piped standard input and output (and `XDG_DATA_HOME` [`data_home`]).
#[allow(dead_code)] // not every test file uses the shared environment
pub fn spawn(name: &str, args: &[&str]) -> Proc {
    spawn_with_env(name, args, &[("XDG_DATA_HOME", &data_home())])
}

/// Starts `chat-cli ARGS` with these environment variables set, as [`spawn`] does.
#[allow(dead_code)] // only some test files set their own environment
pub fn spawn_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat-cli starts");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (sink, pipe) = (stderr.clone(), child.stderr.take().expect("stderr"));
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
            if kept.len() == STDERR_LINES {
                kept.remove(0);
            }
            kept.push(line);
        }
    });
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Proc { name: name.into(), child, stdin, lines, seen: Vec::new(), stderr }
}

impl Proc {
    /// The next JSON event; every stdout line must be one JSON object.
    pub fn event(&mut self) -> Value {
        let line = self.lines.recv_timeout(WAIT).unwrap_or_else(|_| panic!("{}: no event in time", self.name));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        self.seen.push(v.clone());
        v
    }

    /// The next JSON event, if one comes within `wait`.
    #[allow(dead_code)] // not every test file waits longer than WAIT
    pub fn event_within(&mut self, wait: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(wait).ok()?;
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        self.seen.push(v.clone());
        Some(v)
    }

    /// Skips events until one has this type.
    pub fn event_of(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let e = self.event();
            if e["type"] == kind {
                return e;
            }
        }
        panic!("{}: no {kind} event in time", self.name)
    }

    /// The first event (already seen, or read now) of `kind` that satisfies `pred` (bounded: 10 s).
    #[allow(dead_code)] // not every test file waits for a particular event
    pub fn wait_for(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(e) = self.seen.iter().find(|e| e["type"] == kind && pred(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(e) = self.event_within(Duration::from_millis(100))
                && e["type"] == kind
                && pred(&e)
            {
                return e;
            }
        }
        panic!("{}: no such {kind} event in time: {:?}", self.name, self.seen)
    }

    /// Types one line.
    #[allow(dead_code)] // not every test file types
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to chat-cli");
        stdin.flush().expect("flush");
    }

    /// The process ID.
    #[allow(dead_code)] // not every test file signals its children
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes standard input (a clean leave) and waits for the exit code.
    #[allow(dead_code)] // not every test file waits for a clean exit
    pub fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "{}: did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    #[allow(dead_code)] // not every test file stops a server
    pub fn terminate(self) -> i32 {
        let ok = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill").success();
        assert!(ok);
        self.finish()
    }
}

/// Starts `chat-cli serve --listen LISTEN --json ARGS` and waits for its `listening` event: the child
/// (standard output taken, the rest of it unread) and the address it listens on.
#[allow(dead_code)] // not every test file starts its own server this way
pub fn serve_listening(listen: &str, args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["serve", "--listen", listen, "--json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chat-cli starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a listening event").expect("readable");
    let event: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(event["type"], "listening", "{first}");
    (child, event["addr"].as_str().expect("addr").to_string())
}
