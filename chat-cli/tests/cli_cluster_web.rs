//! Cross-process: an instance of a cluster serves the web client (`serve --cluster --web`). A
//! WebSocket user (speaking as the page does) on one instance and a `chat-cli` user on another chat
//! in one order, and see the very same JSON events. The 3-node NATS JetStream cluster is started by
//! the test (skipped, saying why, when nats-server cannot be installed).

#[allow(dead_code)] // shared helpers: this file uses some of them
mod common;
#[allow(dead_code)]
#[path = "common/nats.rs"]
mod nats;
mod websocket;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::WAIT;
use nats::Instance;
use serde_json::json;
use websocket::{assert_screenshots, event_of, missing_browser_tool, open, run_browser_test, send};

#[test]
fn a_web_user_on_one_instance_and_a_terminal_user_on_another_share_one_order() {
    const N: usize = 20;
    let Some(nats) = nats::cluster_or_skip("a_web_user_on_one_instance") else { return };
    let urls = nats.urls();
    let a = Instance::start(&urls, "127.0.0.1:0", &["--web", "127.0.0.1:0"]);
    let b = Instance::start(&urls, "127.0.0.1:0", &[]);
    let web = a.web.clone().expect("the listening event names the web listener");
    assert!(b.web.is_none());

    // The page is served by the instance.
    let mut http = TcpStream::connect(&web).unwrap();
    http.set_read_timeout(Some(WAIT)).unwrap();
    write!(http, "GET / HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    let _ = http.read_to_string(&mut page);
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("<html"), "{page:.300}");

    // A registered name over the web, through the cluster's accounts: a wrong password is refused.
    let mut add = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["account", "add", "wanda", "--cluster", &urls])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"wanda's horse battery\n").unwrap();
    assert!(add.wait().unwrap().success());
    let mut mallory = open(&web);
    send(&mut mallory, json!({"type": "login", "name": "wanda", "password": "not her password"}));
    assert_eq!(event_of(&mut mallory, "error").unwrap()["code"], "auth_failed");

    let mut wanda = open(&web);
    send(&mut wanda, json!({"type": "login", "name": "wanda", "password": "wanda's horse battery"}));
    assert_eq!(event_of(&mut wanda, "ready").unwrap()["name"], "wanda");
    let mut bob = common::spawn("bob", &["--json", "--name", "bob", "--server", &b.addr]);
    bob.event_of("ready");
    for i in 0..N {
        send(&mut wanda, json!({"type": "send", "text": format!("w{i}")}));
        bob.say(&format!("b{i}"));
    }
    send(&mut wanda, json!({"type": "send", "text": "just for bob", "to": ["bob"], "key": 7}));
    let deadline = Instant::now() + WAIT * 2;
    let mut on_web = Vec::new();
    while on_web.len() < 2 * N + 1 {
        assert!(Instant::now() < deadline, "wanda saw {} of {} messages", on_web.len(), 2 * N + 1);
        on_web.push(event_of(&mut wanda, "message").expect("the WebSocket stays open"));
    }
    let mut in_terminal = Vec::new();
    while in_terminal.len() < 2 * N + 1 {
        assert!(Instant::now() < deadline, "bob saw {} of {} messages", in_terminal.len(), 2 * N + 1);
        in_terminal.push(bob.event_of("message"));
    }
    // One order, one contract: the same messages, in the same order, as the same JSON objects.
    assert_eq!(on_web, in_terminal);
    let texts = |from: &str| on_web.iter().filter(|e| e["from"] == from).map(|e| e["text"].clone()).collect::<Vec<_>>();
    assert_eq!(texts("bob"), (0..N).map(|i| json!(format!("b{i}"))).collect::<Vec<_>>());
    assert_eq!(texts("wanda").len(), N + 1);
    let unicast = on_web.iter().find(|e| e["text"] == "just for bob").unwrap();
    assert_eq!((unicast["kind"].clone(), unicast["to"].clone()), (json!("unicast"), json!(["bob"])));
    let ids: Vec<&str> = on_web.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let seqs: Vec<u64> = ids.iter().map(|id| id.split(':').nth(1).unwrap().parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in the order of the log: {ids:?}");

    // The web user's instance stops: the browser is told to go elsewhere, then the WebSocket closes.
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(event_of(&mut wanda, "error").unwrap()["code"], "shutting_down");
    assert!(event_of(&mut wanda, "message").is_none(), "closed");
    // wanda's session is detached (she may resume elsewhere within the grace period): bob stays.
    assert!(bob.event_within(Duration::from_millis(200)).is_none_or(|e| e["type"] != "error"));
    assert_eq!(bob.finish(), 0);
    assert_eq!(b.terminate(), Some(0));
}

/// The browser test (`tests/web/browser_test.py --cluster`): two headless Chromium users on one
/// instance and a `chat-cli` user on another exchange broadcasts, a room message, DMs and a multicast
/// and see one order; a tab that leaves and comes back resumes. Runs when Debian's `chromium` and
/// `chromium-driver` are installed (`tests/web/run.sh` installs them); otherwise it says so and passes.
#[test]
fn in_a_real_browser_across_instances_when_chromium_is_installed() {
    if let Some(missing) = missing_browser_tool() {
        println!("SKIPPED: browser test across instances: {missing} is not installed (tests/web/run.sh installs it)");
        return;
    }
    let Some(nats) = nats::cluster_or_skip("in_a_real_browser_across_instances") else { return };
    let (passed, said, out) = run_browser_test("web-screenshots-cluster", &["--cluster", &nats.urls()]);
    assert!(passed, "the browser test across instances failed:\n{said}");
    println!("{said}");
    assert_screenshots(&out);
}
