//! The web client through the real binary: `serve --web` announces where it is, a WebSocket user
//! (as the page speaks) and a `chat-cli` user chat, and both receive the very same JSON events.

mod common;
mod websocket;

use std::process::{Command, Stdio};

use common::spawn;
use serde_json::json;
use websocket::{assert_screenshots, event_of, missing_browser_tool, open, run_browser_test, send};

#[test]
fn a_browser_user_and_a_chat_cli_user_see_the_same_events() {
    let mut server =
        spawn("server", &["serve", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--no-log", "--json"]);
    let listening = server.event_of("listening");
    let addr = listening["addr"].as_str().unwrap().to_string();
    let web = listening["web_addr"].as_str().expect("the listening event names the web listener").to_string();
    let mut carol = spawn("carol", &["--json", "--name", "carol", "--server", &addr]);
    carol.event_of("ready");

    let mut alice = open(&web);
    send(&mut alice, json!({"type": "login", "name": "alice"}));
    let ready = event_of(&mut alice, "ready").unwrap();
    assert_eq!((ready["name"].clone(), ready["rooms"].clone()), (json!("alice"), json!([])));
    assert_eq!(carol.event_of("joined")["name"], "alice");

    // One contract: the same message is the same JSON object in the browser and in chat-cli --json.
    send(&mut alice, json!({"type": "send", "text": "hi from the web", "to": ["carol"], "key": 1}));
    let in_terminal = carol.event_of("message");
    let mine = event_of(&mut alice, "message").unwrap();
    assert_eq!(mine, in_terminal);
    assert_eq!((mine["kind"].clone(), mine["to"].clone()), (json!("unicast"), json!(["carol"])));
    assert_eq!(event_of(&mut alice, "sent").unwrap()["key"], 1);
    carol.say("/mc alice,carol both of us");
    let in_terminal = carol.event_of("message");
    assert_eq!(event_of(&mut alice, "message").unwrap(), in_terminal);
    carol.say("/join #web");
    assert_eq!(carol.event_of("history")["room"], "#web");
    send(&mut alice, json!({"type": "join", "room": "#web"}));
    assert_eq!(event_of(&mut alice, "history").unwrap(), json!({"type": "history", "room": "#web", "messages": []}));
    send(&mut alice, json!({"type": "send", "text": "in the room", "room": "#web"}));
    let in_terminal = carol.event_of("message");
    assert_eq!(in_terminal["room"], "#web");
    assert_eq!(event_of(&mut alice, "message").unwrap(), in_terminal);

    // The server stops: the browser is told why, then the WebSocket closes.
    assert_eq!(server.terminate(), 0);
    let closing = event_of(&mut alice, "error").unwrap();
    assert_eq!(closing["code"], "shutting_down");
    assert!(event_of(&mut alice, "message").is_none(), "closed");
}

#[test]
fn the_web_listener_keeps_the_safe_defaults() {
    let run =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(args).stdin(Stdio::null()).output().unwrap();
    // Beyond loopback: TLS and accounts, or --insecure (checked before anything is bound).
    let out = run(&["serve", "--no-log", "--listen", "127.0.0.1:0", "--web", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));
    let out = run(&["serve", "--no-log", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--web-origin", "evil"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web-origin"));
}

/// The browser test (`tests/web/browser_test.py`): two headless Chromium users and a `chat-cli`
/// user, one order, screenshots under `target/web-screenshots/`. Runs when Debian's `chromium` and
/// `chromium-driver` are installed; otherwise it says so and passes (`tests/web/run.sh` installs
/// them and runs it).
#[test]
fn in_a_real_browser_when_chromium_is_installed() {
    if let Some(missing) = missing_browser_tool() {
        println!("SKIPPED: browser test: {missing} is not installed (tests/web/run.sh installs Chromium and runs it)");
        return;
    }
    let (passed, said, out) = run_browser_test("web-screenshots", &[]);
    assert!(passed, "the browser test failed:\n{said}");
    println!("{said}");
    assert_screenshots(&out);
}
