//! A WebSocket user speaking to `serve --web` as the page does: open, send a JSON command, read
//! the next event of a kind. Shared by the web tests (single server and cluster).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::common::WAIT;

/// Opens `ws://WEB/ws` with the page's origin; reads wait at most [`WAIT`].
pub fn open(web: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(web).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("ws://{web}/ws").into_client_request().unwrap();
    request.headers_mut().insert("origin", format!("http://{web}").parse().unwrap());
    tungstenite::client(request, stream).expect("the WebSocket opens").0
}

/// Sends one JSON command.
pub fn send(ws: &mut WebSocket<TcpStream>, command: Value) {
    ws.send(Message::text(command.to_string())).unwrap();
}

/// The next event of type `kind` (others skipped); `None` if the server closed first.
pub fn event_of(ws: &mut WebSocket<TcpStream>, kind: &str) -> Option<Value> {
    for _ in 0..1000 {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                if event["type"] == kind {
                    return Some(event);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    panic!("no {kind} event")
}

/// The first of the browser test's tools (`chromium`, `chromedriver`, `python3`) that is not
/// installed, if one is not (the browser tests then say so and pass; `tests/web/run.sh` installs them).
pub fn missing_browser_tool() -> Option<&'static str> {
    let found = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ["chromium", "chromedriver", "python3"].into_iter().find(|tool| !found(tool))
}

/// Runs `tests/web/browser_test.py` with this test binary's `chat-cli`, screenshots in
/// `target/<profile>/../SCREENSHOTS` (and `extra` arguments); whether it passed, what it printed,
/// and where the screenshots are.
pub fn run_browser_test(screenshots: &str, extra: &[&str]) -> (bool, String, PathBuf) {
    let bin = Path::new(env!("CARGO_BIN_EXE_chat-cli"));
    let out = bin.parent().and_then(Path::parent).expect("target/<profile>/chat-cli").join(screenshots);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/web/browser_test.py");
    let run = Command::new("python3")
        .arg(script)
        .arg("--bin")
        .arg(bin)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    (run.status.success(), said, out)
}

/// Every page the browser test photographs is a picture.
pub fn assert_screenshots(out: &Path) {
    for page in ["alice.png", "bob.png", "bob-disconnected.png"] {
        let png = std::fs::read(out.join(page)).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{page} is a picture");
    }
}
