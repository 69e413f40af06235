//! The real `chat-cli` on a pseudo-terminal, as a person runs it: keys typed into it, its screen read
//! with a terminal parser (`vt100`), and the terminal's settings read after it exits.
//!
//! Each run is `sh -c 'chat-cli ARGS; echo EXIT=$?; stty -a'` on a new pty, so the shell that started
//! chat-cli reports its exit code and then the terminal settings it was left with, in that terminal.
//! Every child is killed when its handle is dropped.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// Longest wait for anything.
pub const WAIT: Duration = Duration::from_secs(15);

/// The terminal's size.
pub const ROWS: u16 = 24;
/// The terminal's width.
pub const COLS: u16 = 80;

/// A `chat-cli` on a pseudo-terminal.
pub struct Tty {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    bytes: Receiver<Vec<u8>>,
    closed: bool,
    /// Everything the terminal received.
    pub raw: Vec<u8>,
    /// The screen.
    pub parser: vt100::Parser,
    master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Drop for Tty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the terminal was left.
#[derive(Debug)]
pub struct Left {
    /// chat-cli's exit code.
    pub code: i32,
    /// The words of `stty -a` afterwards.
    pub stty: Vec<String>,
    /// Whether the alternate screen, hidden cursor or bracketed paste were left on.
    pub alternate_screen: bool,
    /// See above.
    pub hidden_cursor: bool,
    /// See above.
    pub bracketed_paste: bool,
}

impl Left {
    /// Panics unless the terminal is as a shell needs it: echo, line editing, signals, CR→NL on
    /// input, output processing; the normal screen, a visible cursor, no bracketed paste.
    pub fn assert_sane(&self, what: &str) {
        for flag in ["echo", "icanon", "isig", "icrnl", "opost"] {
            assert!(self.stty.iter().any(|w| w == flag), "{what}: `{flag}` is off after exit: {:?}", self.stty);
        }
        assert!(!self.alternate_screen, "{what}: left on the alternate screen");
        assert!(!self.hidden_cursor, "{what}: the cursor is left hidden");
        assert!(!self.bracketed_paste, "{what}: bracketed paste is left on");
    }
}

impl Tty {
    /// Starts `chat-cli ARGS` on a new pty, with `$XDG_STATE_HOME` in `state`.
    pub fn spawn(args: &[&str], state: &Path) -> Tty {
        let pty = native_pty_system()
            .openpty(PtySize { rows: ROWS, cols: COLS, pixel_width: 0, pixel_height: 0 })
            .expect("a pty");
        let mut cmd = CommandBuilder::new("sh");
        cmd.args(["-c", "\"$0\" \"$@\"; echo \"EXIT=$?\"; stty -a", env!("CARGO_BIN_EXE_chat-cli")]);
        cmd.args(args);
        cmd.env("XDG_STATE_HOME", state);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("RUST_LOG");
        let child = pty.slave.spawn_command(cmd).expect("sh starts");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let writer = pty.master.take_writer().expect("writer");
        let (tx, bytes) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        let parser = vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0);
        Tty { child, writer, bytes, closed: false, raw: Vec::new(), parser, master: pty.master }
    }

    /// Types (writes) these bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to the pty");
        self.writer.flush().expect("flush");
    }

    /// Resizes the terminal (the program gets SIGWINCH).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        self.master.resize(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 }).expect("resize");
        // A blank screen of the new size: what is shown from now on is what the program paints for it.
        self.parser = vt100::Parser::new(rows.try_into().unwrap(), cols.try_into().unwrap(), 0);
    }

    /// Reads what arrived, waiting at most `wait`.
    fn pump(&mut self, wait: Duration) {
        match self.bytes.recv_timeout(wait) {
            Ok(chunk) => {
                self.parser.process(&chunk);
                self.raw.extend_from_slice(&chunk);
                while let Ok(more) = self.bytes.try_recv() {
                    self.parser.process(&more);
                    self.raw.extend_from_slice(&more);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.closed = true,
        }
    }

    /// The screen's text.
    pub fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    /// Waits until the screen shows `text`; returns the screen.
    pub fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline && !self.closed, "no {text:?} on the screen:\n{screen}");
            self.pump(Duration::from_millis(50));
        }
    }

    /// Waits until each of the screen's last rows shows its text (the last text on the last row);
    /// returns the screen.
    pub fn wait_for_bottom_rows(&mut self, texts: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let (rows, cols) = self.parser.screen().size();
            let all: Vec<String> = self.parser.screen().rows(0, cols.get()).collect();
            let first = usize::from(rows.get()).saturating_sub(texts.len());
            if all.len() >= texts.len() && texts.iter().enumerate().all(|(i, t)| all[first + i].contains(t)) {
                return self.screen();
            }
            assert!(Instant::now() < deadline && !self.closed, "no {texts:?} on the last rows:\n{}", self.screen());
            self.pump(Duration::from_millis(50));
        }
    }

    /// Waits for chat-cli to exit and the shell to report; how the terminal was left.
    pub fn left(&mut self) -> Left {
        let deadline = Instant::now() + WAIT;
        while !self.closed {
            assert!(Instant::now() < deadline, "chat-cli did not exit:\n{}", self.screen());
            self.pump(Duration::from_millis(50));
        }
        let text = String::from_utf8_lossy(&self.raw).to_string();
        let after = text.rsplit_once("EXIT=").map(|(_, a)| a).unwrap_or_else(|| panic!("no exit code in {text:?}"));
        let code = after.split_whitespace().next().and_then(|c| c.parse().ok()).expect("an exit code");
        let stty = after.split(|c: char| c.is_whitespace() || c == ';').map(str::to_string).collect();
        let screen = self.parser.screen();
        Left {
            code,
            stty,
            alternate_screen: screen.alternate_screen(),
            hidden_cursor: screen.hide_cursor(),
            bracketed_paste: screen.bracketed_paste(),
        }
    }

    /// The process ID of the chat-cli running as `name` (not of its shell).
    pub fn pid_of(name: &str) -> u32 {
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_cli = args.first().is_some_and(|a| a.ends_with(b"chat-cli"));
            if is_cli && args.windows(2).any(|w| w[0] == b"--name" && w[1] == name.as_bytes()) {
                return pid;
            }
        }
        panic!("no chat-cli named {name}")
    }
}

/// Sends `signal` (`TERM`, `KILL`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().expect("kill").success();
    assert!(ok, "kill -{signal} {pid}");
}

/// A server process, killed when dropped.
pub struct Served {
    /// Its address.
    pub addr: String,
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `chat-cli serve --listen LISTEN --json ARGS`, once it listens.
    pub fn start(listen: &str, args: &[&str]) -> Served {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let (child, addr) = crate::common::serve_listening(listen, &args);
        Served { addr, child }
    }

    /// Stops it with `signal` (`TERM`: a clean shutdown; `KILL`: the connection is simply lost).
    pub fn stop(mut self, how: &str) {
        signal(self.child.id(), how);
        let _ = self.child.wait();
    }
}
