//! The web client's WebSocket protocol, without a browser: the real server shell on loopback, web
//! users (a WebSocket client that behaves like the page) and native users of the same router.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_core::{Chat, Event, UserName};
use chat_server::ServerError;
use chat_server::accounts::Accounts;
use chat_server::client::{ClientConfig, connect};
use chat_server::journal::FsyncPolicy;
use chat_server::router::AuthMode;
use chat_server::server::{Server, ServerConfig};
use chat_server::tls::{TlsClient, TlsServer, Trust};
use chat_server::web::MAX_COMMAND_BYTES;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

use futures_util::{SinkExt, StreamExt};

const WAIT: Duration = Duration::from_secs(10);

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

struct Running {
    addr: SocketAddr,
    web: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn start(config: ServerConfig) -> Running {
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let web = server.web_addr().unwrap().expect("a web listener");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running { addr, web, stop: Some(stop), task }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(WAIT, self.task).await.expect("server stops in time").unwrap().unwrap();
    }

    async fn native(&self, name: &str) -> Chat {
        Chat::new(connect(ClientConfig::new(self.addr.to_string(), n(name))).await.unwrap())
    }

    /// A WebSocket from the server's own page.
    async fn browser(&self) -> Browser<TcpStream> {
        Browser::open(self.web, Some(&format!("http://{}", self.web))).await.unwrap()
    }

    /// A browser logged in as `name`.
    async fn login(&self, name: &str) -> (Browser<TcpStream>, Value) {
        let mut b = self.browser().await;
        b.send(json!({"type": "login", "name": name})).await;
        let ready = b.until("ready").await;
        (b, ready)
    }
}

fn config(dir: Option<&Path>) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        web_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.map(Path::to_path_buf),
        fsync: FsyncPolicy::EveryBatch,
        limits: None,
        ..ServerConfig::default()
    }
}

/// A WebSocket client that behaves like the page: it keeps every event it reads.
struct Browser<S> {
    ws: WebSocketStream<S>,
    events: Vec<Value>,
}

impl Browser<TcpStream> {
    async fn open(web: SocketAddr, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        let stream = TcpStream::connect(web).await.unwrap();
        Browser::over(stream, &format!("ws://{web}/ws"), origin).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Browser<S> {
    async fn over(stream: S, url: &str, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        let (ws, _) = client_async(request, stream).await?;
        Ok(Browser { ws, events: Vec::new() })
    }

    async fn send(&mut self, command: Value) {
        self.ws.send(Message::text(command.to_string())).await.unwrap();
    }

    /// The next event; `None` once the server closed the WebSocket.
    async fn next(&mut self) -> Option<Value> {
        loop {
            match timeout(WAIT, self.ws.next()).await.expect("an event in time") {
                Some(Ok(Message::Text(text))) => {
                    let event: Value = serde_json::from_str(&text).expect("one JSON object per message");
                    self.events.push(event.clone());
                    return Some(event);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads until an event of type `kind` (the others are kept).
    async fn until(&mut self, kind: &str) -> Value {
        self.until_where(|e| e["type"] == kind).await
    }

    async fn until_where(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100_000 {
            match self.next().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => continue,
                None => panic!("closed while waiting; got {:?}", self.events),
            }
        }
        panic!("never came")
    }

    /// Reads until the server closes the WebSocket; the events read meanwhile.
    async fn until_closed(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        for _ in 0..1_000_000 {
            match self.next().await {
                Some(event) => events.push(event),
                None => return events,
            }
        }
        panic!("never closed")
    }

    /// The texts of the messages received so far, in order.
    fn texts(&self) -> Vec<String> {
        self.events.iter().filter(|e| e["type"] == "message").map(|e| e["text"].as_str().unwrap().to_string()).collect()
    }

    /// The IDs of the messages received so far, in order.
    fn ids(&self) -> Vec<String> {
        self.events.iter().filter(|e| e["type"] == "message").map(|e| e["id"].as_str().unwrap().to_string()).collect()
    }
}

fn seq(id: &str) -> u64 {
    id.rsplit(':').next().unwrap().parse().unwrap()
}

async fn native_messages(chat: &mut Chat, count: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        match timeout(WAIT, chat.next_event()).await.expect("a message in time") {
            Some(Event::Message(m)) => out.push((m.id.to_string(), m.body)),
            Some(_) => continue,
            None => panic!("chat closed"),
        }
    }
    out
}

#[tokio::test]
async fn browsers_and_a_native_user_exchange_every_kind_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(config(Some(dir.path()))).await;
    let (mut alice, ready) = server.login("alice").await;
    let token = ready["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 16, "a session token");
    assert_eq!(ready["name"], "alice");
    assert_eq!(ready["rooms"], json!([]));
    assert_eq!(ready["grace_ms"], 60_000);
    let (mut bob, _) = server.login("bob").await;
    let mut carol = server.native("carol").await;
    alice.until_where(|e| e["type"] == "joined" && e["name"] == "carol").await;

    // Rooms: joining answers with the room's history.
    alice.send(json!({"type": "join", "room": "#web"})).await;
    assert_eq!(alice.until("history").await, json!({"type": "history", "room": "#web", "messages": []}));
    bob.send(json!({"type": "join", "room": "#web"})).await;
    bob.until("history").await;
    carol.join_room(chat_core::RoomName::new("#web").unwrap()).await.unwrap();

    // A broadcast, a DM, a multicast and a room message, from both kinds of client.
    alice.send(json!({"type": "send", "text": "hello <b>all</b>", "key": 1})).await;
    let sent = alice.until("sent").await;
    assert_eq!(sent["key"], 1);
    assert_eq!((sent["unknown"].clone(), sent["queued"].clone()), (json!([]), json!([])));
    carol.send_to(n("alice"), "just you").await.unwrap();
    bob.send(json!({"type": "send", "text": "you two", "to": ["alice", "carol"], "key": 1})).await;
    bob.until("sent").await;
    bob.send(json!({"type": "send", "text": "in the room", "room": "#web", "key": 2})).await;
    bob.until("sent").await;
    carol.broadcast("from the terminal").await.unwrap();

    let seen_by_carol = native_messages(&mut carol, 5).await;
    let expected_carol = ["hello <b>all</b>", "just you", "you two", "in the room", "from the terminal"];
    assert_eq!(seen_by_carol.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), expected_carol);
    alice.until_where(|e| e["text"] == "from the terminal").await;
    bob.until_where(|e| e["text"] == "from the terminal").await;
    assert_eq!(alice.texts(), ["hello <b>all</b>", "just you", "you two", "in the room", "from the terminal"]);
    assert_eq!(bob.texts(), ["hello <b>all</b>", "you two", "in the room", "from the terminal"]);

    // One order: the messages all three see have the same IDs in the same order, and every
    // client's IDs increase.
    let common = |ids: Vec<String>, texts: Vec<String>| -> Vec<String> {
        ids.into_iter().zip(texts).filter(|(_, t)| t != "just you").map(|(id, _)| id).collect()
    };
    let carol_ids: Vec<String> = seen_by_carol.iter().map(|(id, _)| id.clone()).collect();
    let carol_texts = seen_by_carol.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(alice.ids(), carol_ids, "alice and carol see the same five");
    assert_eq!(bob.ids(), common(carol_ids, carol_texts));
    assert!(alice.ids().windows(2).all(|w| seq(&w[0]) < seq(&w[1])));

    // Message events are exactly the --json ones: kinds, addressees, rooms, times.
    let dm = alice.events.iter().find(|e| e["text"] == "just you").unwrap();
    assert_eq!(
        (dm["kind"].clone(), dm["from"].clone(), dm["to"].clone()),
        (json!("unicast"), json!("carol"), json!(["alice"]))
    );
    let multi = alice.events.iter().find(|e| e["text"] == "you two").unwrap();
    assert_eq!((multi["kind"].clone(), multi["to"].clone()), (json!("multicast"), json!(["alice", "carol"])));
    let room = alice.events.iter().find(|e| e["text"] == "in the room").unwrap();
    assert_eq!((room["kind"].clone(), room["room"].clone()), (json!("room"), json!("#web")));
    assert!(room["time"].as_str().unwrap().ends_with('Z'), "{room}");

    // Who is online, rooms, peers, history.
    alice.send(json!({"type": "who"})).await;
    assert_eq!(alice.until("who").await, json!({"type": "who", "room": null, "names": ["alice", "bob", "carol"]}));
    alice.send(json!({"type": "rooms"})).await;
    assert_eq!(alice.until("rooms").await, json!({"type": "rooms", "rooms": [{"name": "#web", "members": 3}]}));
    alice.send(json!({"type": "peers"})).await;
    assert_eq!(alice.until("peers").await["peers"].as_array().unwrap().len(), 3);
    alice.send(json!({"type": "history", "room": "#web"})).await;
    let history = alice.until("history").await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
    assert_eq!(history["messages"][0]["text"], "in the room");

    // Parting: a `left` event with the room; the browser leaves cleanly, the others see it.
    alice.send(json!({"type": "part", "room": "#web"})).await;
    assert_eq!(alice.until("left").await, json!({"type": "left", "name": "alice", "room": "#web"}));
    bob.send(json!({"type": "leave"})).await;
    bob.until_closed().await;
    alice.until_where(|e| e["type"] == "left" && e["name"] == "bob" && e.get("room").is_none()).await;
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_websocket_resumes_with_nothing_lost_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(config(Some(dir.path()))).await;
    let (mut alice, ready) = server.login("alice").await;
    let token = ready["token"].as_str().unwrap().to_string();
    let mut bob = server.native("bob").await;
    for i in 0..5 {
        bob.broadcast(format!("m{i}")).await.unwrap();
    }
    alice.until_where(|e| e["text"] == "m4").await;
    let cursor = seq(alice.ids().last().unwrap());
    // A send whose acknowledgement never arrives: the connection drops (no close frame) first.
    alice.send(json!({"type": "send", "text": "keyed", "key": 77})).await;
    drop(alice);
    for i in 5..15 {
        bob.broadcast(format!("m{i}")).await.unwrap();
    }
    // bob saw everything, "keyed" once among it.
    let bob_saw = native_messages(&mut bob, 16).await;
    let keyed_id = bob_saw.iter().find(|(_, t)| t == "keyed").unwrap().0.clone();

    let mut again = server.browser().await;
    again.send(json!({"type": "login", "name": "alice", "resume": {"token": token, "cursor": cursor}})).await;
    let ready = again.until("ready").await;
    assert_eq!(ready["name"], "alice");
    let resumed = again.until("resumed").await;
    assert_eq!(resumed, json!({"type": "resumed", "missed": 11}), "m5..m14 and its own keyed message");
    for _ in 0..11 {
        again.until("message").await;
    }
    let mut expected: Vec<String> = (5..15).map(|i| format!("m{i}")).collect();
    let at = bob_saw.iter().filter(|(_, t)| t.starts_with('m')).position(|(id, _)| seq(id) > seq(&keyed_id)).unwrap();
    expected.insert(at - 5, "keyed".into());
    assert_eq!(again.texts(), expected, "what was missed, in order, once");
    assert!(again.ids().iter().all(|id| seq(id) > cursor));

    // The page sends the unacknowledged message again with its key: the same message, stored once.
    again.send(json!({"type": "send", "text": "keyed", "key": 77})).await;
    let sent = again.until("sent").await;
    assert_eq!((sent["id"].as_str().unwrap(), sent["key"].clone()), (keyed_id.as_str(), json!(77)));
    bob.broadcast("after").await.unwrap();
    again.until_where(|e| e["text"] == "after").await;
    assert_eq!(native_messages(&mut bob, 1).await[0].1, "after", "bob got keyed once: the next is 'after'");
    assert_eq!(again.texts().iter().filter(|t| *t == "keyed").count(), 1);
    server.stop().await;
}

/// One HTTP/1.1 request; the response's status line, headers (lowercase) and body.
async fn http(web: SocketAddr, request: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(web).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn the_page_is_served_and_only_its_own_origin_may_open_the_websocket() {
    let server = Running::start(config(None)).await;
    let web = server.web;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n");
    let (status, headers, body) = http(web, &get("/")).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{headers}");
    assert!(headers.contains("x-content-type-options: nosniff"));
    assert!(body.contains(r#"<script type="module" src="/app.js">"#));
    let (status, headers, body) = http(web, &get("/session.js")).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("content-type: text/javascript"));
    assert!(body.contains("sessionStorage"));
    assert_eq!(http(web, &get("/../../etc/passwd")).await.0, "HTTP/1.1 404 Not Found");
    let post = format!("POST / HTTP/1.1\r\nHost: {web}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    assert_eq!(http(web, &post).await.0, "HTTP/1.1 405 Method Not Allowed");

    // Cross-site WebSocket hijacking: another site's page (or a rebound DNS name) is refused.
    for origin in ["http://evil.example", "null", &format!("https://{web}"), "http://127.0.0.1:1"] {
        match Browser::open(web, Some(origin)).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403, "{origin}"),
            Err(e) => panic!("{origin}: {e}"),
            Ok(_) => panic!("{origin} was let in"),
        }
    }
    let stream = TcpStream::connect(web).await.unwrap();
    let rebound = Browser::over(stream, "ws://evil.example/ws", Some("http://evil.example")).await;
    assert!(matches!(rebound, Err(tungstenite::Error::Http(r)) if r.status() == 403), "DNS rebinding");
    // The server's own page (by IP address or localhost), and programs without an Origin, may.
    let localhost = format!("http://localhost:{}", web.port());
    let stream = TcpStream::connect(web).await.unwrap();
    let url = format!("ws://localhost:{}/ws", web.port());
    assert!(Browser::over(stream, &url, Some(&localhost)).await.is_ok());
    let mut program = Browser::open(web, None).await.unwrap();
    program.send(json!({"type": "login", "name": "bot"})).await;
    program.until("ready").await;
    server.stop().await;
}

#[tokio::test]
async fn hostile_clients_get_reasons_and_bounds_not_the_server() {
    let mut config = config(None);
    config.login_timeout = Duration::from_millis(300);
    let server = Running::start(config).await;

    // Silence: closed at the login deadline.
    let mut mute = server.browser().await;
    let last = mute.until_closed().await;
    assert_eq!(last, [json!({"type": "error", "code": "protocol", "message": "no login within 0.3 s"})]);

    // Garbage, binary frames, commands before login: each gets an error, the connection goes on.
    let mut rude = server.browser().await;
    rude.ws.send(Message::text("{{{")).await.unwrap();
    assert_eq!(rude.until("error").await["code"], "bad_command");
    rude.ws.send(Message::binary(vec![0u8; 16])).await.unwrap();
    assert_eq!(rude.until("error").await["code"], "bad_command");
    rude.send(json!({"type": "send", "text": "early", "key": 3})).await;
    assert_eq!(
        rude.until("error").await,
        json!({"type": "error", "code": "protocol",
        "message": "log in first (and wait for ready)", "key": 3})
    );
    rude.send(json!({"type": "login", "name": "Sistema"})).await;
    let refused = rude.until("error").await;
    assert_eq!(refused["code"], "invalid_name");
    rude.until_closed().await;

    // A body over the limit is refused (with its key); a message over the frame limit ends the
    // connection with a reason.
    let (mut big, _) = server.login("big").await;
    let body = "x".repeat(chat_core::MAX_BODY_LEN + 1);
    big.send(json!({"type": "send", "text": body, "key": 9})).await;
    let error = big.until("error").await;
    assert_eq!((error["code"].clone(), error["key"].clone()), (json!("too_long"), json!(9)));
    let huge = format!(r#"{{"type":"send","text":"{}"}}"#, "y".repeat(MAX_COMMAND_BYTES));
    big.ws.send(Message::text(huge)).await.unwrap();
    let last = big.until_closed().await;
    assert!(last.iter().all(|e| e["code"] == "too_long"), "{last:?}");

    // Nothing of this hurt anyone else.
    let (mut fine, _) = server.login("fine").await;
    fine.send(json!({"type": "send", "text": "still here"})).await;
    fine.until_where(|e| e["text"] == "still here").await;
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_apply_and_a_refused_send_goes_again_with_its_key() {
    let mut config = config(None);
    let messages = chat_core::rate::Rate { per_second: 2, burst: 2 };
    config.limits = Some(chat_server::router::Limits { messages, ..Default::default() });
    let server = Running::start(config).await;
    let (mut alice, _) = server.login("alice").await;
    for key in 1..=4 {
        alice.send(json!({"type": "send", "text": format!("n{key}"), "key": key})).await;
    }
    let mut answers = Vec::new();
    while answers.len() < 4 {
        let e = alice.until_where(|e| e["type"] == "sent" || e["type"] == "error").await;
        answers.push((
            e["type"].as_str().unwrap().to_string(),
            e["key"].as_u64().unwrap(),
            e["retry_after_ms"].as_u64(),
        ));
    }
    // The first send over the limit is refused (one answer per refusal window); the one sent inside
    // that window waits for its end and then goes (the bucket has refilled one message by then).
    assert_eq!(&answers[..2], [("sent".into(), 1, None), ("sent".into(), 2, None)]);
    let wait = answers[2].2.expect("when to retry");
    assert_eq!(answers[2], ("error".into(), 3, Some(wait)), "{answers:?}");
    assert_eq!(answers[3], ("sent".into(), 4, None), "{answers:?}");
    tokio::time::sleep(Duration::from_millis(wait)).await;
    alice.send(json!({"type": "send", "text": "n3", "key": 3})).await;
    assert_eq!(alice.until("sent").await["key"], 3);
    assert_eq!(alice.texts(), ["n1", "n2", "n4", "n3"], "the refused send was not delivered until sent again");
    server.stop().await;
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_disconnected_and_holds_nobody_back() {
    let mut config = config(None);
    config.backlog_bytes = 1024 * 1024;
    let server = Running::start(config).await;
    let (mut slow, _) = server.login("slow").await;
    let mut bob = server.native("bob").await;
    let mut carol = server.native("carol").await;
    // The slow browser reads nothing from here on.
    let body = "z".repeat(4096);
    let count = 4000;
    let sending = tokio::spawn(async move {
        for _ in 0..count {
            bob.broadcast(body.clone()).await.unwrap();
        }
        bob
    });
    let mut got = 0;
    let mut slow_left = false;
    while got < count || !slow_left {
        match timeout(WAIT, carol.next_event()).await.expect("carol is not held back") {
            Some(Event::Message(_)) => got += 1,
            Some(Event::PeerLeft(p)) if p.name == n("slow") => slow_left = true,
            Some(_) => {}
            None => panic!("carol's connection closed"),
        }
    }
    let _bob = sending.await.unwrap();
    // The slow browser gets, in order and without a gap, what was sent to it before it was cut off
    // (and the reason, if its socket had room for it), then the end.
    let events = slow.until_closed().await;
    let seqs: Vec<u64> =
        events.iter().filter(|e| e["type"] == "message").map(|e| seq(e["id"].as_str().unwrap())).collect();
    assert!(seqs.len() < count, "it was cut off: {} messages", seqs.len());
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap, no repeat");
    let others: Vec<&Value> = events.iter().filter(|e| e["type"] != "message").collect();
    assert!(others.iter().all(|e| e["type"] == "joined" || e["code"] == "slow_consumer"), "{others:?}");
    server.stop().await;
}

#[tokio::test]
async fn wss_with_accounts_passwords_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut accounts = Accounts::load(dir.path()).unwrap();
    accounts.add(n("alice"), "correct horse battery").unwrap();
    let bot_token = {
        accounts.add(n("bot"), "another long password").unwrap();
        accounts.issue_token(&n("bot")).unwrap()
    };
    accounts.save().unwrap();
    let tls = TlsServer::self_signed(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
    let fingerprint = tls.fingerprint;
    let mut config = config(Some(dir.path()));
    config.tls = Some(tls);
    config.auth = AuthMode::Accounts;
    let server = Running::start(config).await;
    let web = server.web;
    let wss = || async move {
        let (connector, _) = TlsClient { trust: Trust::Pinned(fingerprint) }.connector(&web.to_string()).unwrap();
        let tcp = TcpStream::connect(web).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let stream = connector.connect(name, tcp).await.expect("a TLS handshake on the web port");
        Browser::over(stream, &format!("wss://{web}/ws"), Some(&format!("https://{web}"))).await.unwrap()
    };

    let mut nobody = wss().await;
    nobody.send(json!({"type": "login", "name": "alice"})).await;
    assert_eq!(nobody.until("error").await["code"], "auth_failed");
    let mut alice = wss().await;
    alice.send(json!({"type": "login", "name": "alice", "password": "correct horse battery"})).await;
    alice.until("ready").await;
    let mut bot = wss().await;
    bot.send(json!({"type": "login", "name": "bot", "token": bot_token})).await;
    bot.until("ready").await;
    bot.send(json!({"type": "send", "text": "over TLS", "to": ["alice"]})).await;
    alice.until_where(|e| e["text"] == "over TLS").await;

    // Plain HTTP on the TLS port gets nothing.
    let mut plain = TcpStream::connect(web).await.unwrap();
    plain.write_all(format!("GET / HTTP/1.1\r\nHost: {web}\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = timeout(WAIT, plain.read_to_end(&mut answer)).await.expect("closed in time");
    assert!(!String::from_utf8_lossy(&answer).contains("<html"), "no page without TLS");
    server.stop().await;
}
