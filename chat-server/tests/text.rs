//! Seed 000's text protocol served by the real server shell, with native users of the same router.
//! The text client here behaves exactly like the original Python client: one read of at most 1024
//! bytes per server message, decoded strictly as UTF-8, its clock parsed with `int()`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_core::{Chat, ChatMessage, CoreError, ErrorCode, Event, NodeId, Recipients, Timestamp, UserName};
use chat_server::ServerError;
use chat_server::client::{ClientConfig, connect};
use chat_server::journal::FsyncPolicy;
use chat_server::protocol::{ClientFrame, ServerFrame};
use chat_server::server::{Server, ServerConfig};
use chat_transport::memory::MemoryNetwork;
use chat_transport::{Connection, Dialer, Role, handshake};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(10);
/// The original client sleeps this long between reading `ACCEPT` and reading the prompt.
const ORIGINAL_PAUSE: Duration = Duration::from_secs(1);

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

/// The original client (`multithread_client_socket.py`), message for message.
struct Original<S> {
    stream: S,
    clock: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Original<S> {
    /// `client.send(text.encode())`.
    async fn send(&mut self, text: &[u8]) {
        self.stream.write_all(text).await.unwrap();
    }

    /// `client.recv(1024).decode()`: one read; "" at end of stream.
    async fn recv(&mut self) -> String {
        let mut buf = [0u8; 1024];
        let read = timeout(WAIT, self.stream.read(&mut buf)).await.expect("a message in time");
        let got = read.unwrap_or(0);
        String::from_utf8(buf[..got].to_vec()).expect("the original decodes strictly: a UTF-8 error kills it")
    }

    /// The handshake of `ChatClient.__init__`, sleeping `pause` where the original sleeps a second.
    async fn handshake(stream: S, name: &str, pause: Duration) -> Self {
        let mut me = Original { stream, clock: 0 };
        me.send(b"CONNECT").await;
        let response = me.recv().await;
        let parts: Vec<&str> = response.splitn(3, ':').collect();
        assert_eq!(parts[0], "ACCEPT", "{response:?}");
        me.update(parts[1].parse().expect("int(parts[1])"));
        assert_eq!(parts[2], "Bem-vindo ao servidor\n", "ACCEPT came alone");
        tokio::time::sleep(pause).await;
        let prompt = me.recv().await;
        let (clock, prompt) = prompt.split_once(':').expect("<clock>:<prompt>");
        me.update(clock.parse().expect("int(prompt_parts[0])"));
        assert_eq!(prompt, "Digite seu nome: \n", "the prompt came alone");
        me.clock += 1;
        let login = format!("{}:{name}", me.clock);
        me.send(login.as_bytes()).await;
        me
    }

    fn update(&mut self, server: u64) {
        self.clock = self.clock.max(server) + 1;
    }

    /// One message as `receive_messages` parses it: `(int(parts[0]), parts[1], parts[2])`, the
    /// trailing line break taken off the text.
    async fn message(&mut self) -> (u64, String, String) {
        let message = self.recv().await;
        let parts: Vec<&str> = message.splitn(3, ':').collect();
        assert!(parts.len() >= 2, "not a message: {message:?}");
        let clock: u64 = parts[0].parse().unwrap_or_else(|_| panic!("int() fails on {message:?}: the thread dies"));
        self.update(clock);
        let text = parts.get(2).copied().unwrap_or("");
        assert_eq!(text.matches('\n').count(), 1, "one line per read: {message:?}");
        (clock, parts[1].to_string(), text.trim_end_matches('\n').to_string())
    }

    /// What `send_messages` sends for a typed `COMMAND:target:text`.
    async fn command(&mut self, typed: &str) {
        self.clock += 1;
        let line = format!("{}:{typed}", self.clock);
        self.send(line.as_bytes()).await;
    }

    /// Reads until the server closes: every message, concatenated.
    async fn rest(&mut self) -> String {
        let mut all = String::new();
        for _ in 0..10_000 {
            let got = self.recv().await;
            if got.is_empty() {
                return all;
            }
            all.push_str(&got);
        }
        panic!("the server never closed")
    }
}

struct Running {
    addr: SocketAddr,
    text: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(WAIT, self.task).await.expect("server stops in time").unwrap().unwrap();
    }

    async fn original(&self, name: &str, pause: Duration) -> Original<TcpStream> {
        Original::handshake(TcpStream::connect(self.text).await.unwrap(), name, pause).await
    }

    async fn raw(&self) -> Original<TcpStream> {
        Original { stream: TcpStream::connect(self.text).await.unwrap(), clock: 0 }
    }

    async fn join(&self, name: &str) -> Chat {
        Chat::new(connect(ClientConfig::new(self.addr.to_string(), n(name))).await.unwrap())
    }
}

fn config(dir: Option<&Path>) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        text_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.map(Path::to_path_buf),
        fsync: FsyncPolicy::EveryBatch,
        limits: None,
        ..ServerConfig::default()
    }
}

async fn start(config: ServerConfig) -> Running {
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let text = server.text_addr().unwrap().expect("a text listener");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running { addr, text, stop: Some(stop), task }
}

/// The time between two lines a person types.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn next_message(chat: &mut Chat) -> ChatMessage {
    loop {
        match timeout(WAIT, chat.next_event()).await.expect("a message in time") {
            Some(Event::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("chat closed"),
        }
    }
}

async fn next_left(chat: &mut Chat) -> UserName {
    loop {
        match timeout(WAIT, chat.next_event()).await.expect("an event in time") {
            Some(Event::PeerLeft(p)) => return p.name,
            Some(_) => continue,
            None => panic!("chat closed"),
        }
    }
}

#[tokio::test]
async fn the_original_client_and_native_users_exchange_all_three_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(Some(dir.path()))).await;
    let mut alice = server.join("alice").await;
    let mut bob = server.join("bob").await;
    let mut carol = server.original("carol", ORIGINAL_PAUSE).await;
    assert_eq!(carol.message().await, (0, "Sistema".into(), "Usuários conectados: alice, bob, carol".into()));

    // Native → text: the forms of the original server, the clock every front end shows.
    alice.broadcast("hello all").await.unwrap();
    let m = next_message(&mut bob).await;
    assert_eq!(carol.message().await, (m.lamport.counter, "alice (broadcast)".into(), "hello all".into()));
    alice.send_to(n("carol"), "just you").await.unwrap();
    let (l1, from, text) = carol.message().await;
    assert_eq!((from.as_str(), text.as_str()), ("alice", "just you"));
    alice.multicast([n("bob"), n("carol")], "team").await.unwrap();
    let m = next_message(&mut bob).await;
    assert_eq!(carol.message().await, (m.lamport.counter, "alice (multicast)".into(), "team".into()));
    assert!(l1 < m.lamport.counter);

    // Text → native, with the original's acknowledgements (sent once durable).
    carol.command("MSG:alice:oi alice").await;
    while next_message(&mut alice).await.body != "team" {} // alice's own echoes first
    let m = next_message(&mut alice).await;
    assert_eq!((m.sender.as_str(), m.body.as_str()), ("carol", "oi alice"));
    assert_eq!(m.recipients, Recipients::Unicast(n("alice")));
    pause().await; // a person types: the original client's sends never arrive together
    carol.command("MULTICAST:alice,bob:oi: vocês").await;
    let m = next_message(&mut alice).await;
    assert_eq!((m.body.as_str(), &m.recipients), ("oi: vocês", &Recipients::Multicast(vec![n("alice"), n("bob")])));
    assert_eq!(next_message(&mut bob).await.id, m.id);
    assert_eq!(
        carol.message().await,
        (m.lamport.counter, "Sistema".into(), "Mensagem enviada para 2 usuário(s)".into())
    );
    pause().await;
    carol.command("BROADCAST:ALL:oi todos").await;
    let m = next_message(&mut bob).await;
    assert_eq!((m.sender.as_str(), m.body.as_str(), &m.recipients), ("carol", "oi todos", &Recipients::Broadcast));
    assert_eq!(
        carol.message().await,
        (m.lamport.counter, "Sistema".into(), "Mensagem enviada para todos (2 usuário(s))".into())
    );
    pause().await;
    carol.command("MSG:nobody:x").await;
    assert_eq!(carol.message().await.2, "Usuário não encontrado.");
    pause().await;
    carol.command("MULTICAST:x,y:z").await;
    assert_eq!(carol.message().await.2, "Nenhum destinatário válido encontrado.");

    // A second text user stays for the shutdown; carol just closes her socket: a leave.
    let mut dave = server.original("dave", Duration::ZERO).await;
    assert_eq!(dave.message().await.2, "Usuários conectados: alice, bob, carol, dave");
    drop(carol);
    assert_eq!(next_left(&mut alice).await, n("carol"));
    server.stop().await;
    // dave was sent no message yet: his notices carry 0.
    assert_eq!(dave.rest().await, "0:Sistema:Conexão encerrada: the server is shutting down\n");
}

#[tokio::test]
async fn hostile_handshakes_and_names_are_refused() {
    let server = start(ServerConfig { login_timeout: Duration::from_millis(500), ..config(None) }).await;
    // Not CONNECT: the original's refusal.
    let mut c = server.raw().await;
    c.send(b"HELLO\n").await;
    assert_eq!(c.rest().await, "REJECT:Protocolo inválido\n");
    // Never a word: closed at the login timeout, without a line (it does not speak the protocol).
    let mut c = server.raw().await;
    assert_eq!(c.rest().await, "");
    // CONNECT, then no name: the login timeout, said in a line the client can read.
    let mut c = server.raw().await;
    c.send(b"CONNECT").await;
    assert_eq!(
        c.rest().await,
        "ACCEPT:0:Bem-vindo ao servidor\n0:Digite seu nome: \n0:Sistema:Conexão encerrada: no login within 0.5 s\n"
    );
    // Names no user may have: control characters, the server's own name in any case.
    for (name, why) in [
        ("al\u{1b}[2Jice", "invalid user name \"al\\\\u{1b}[2Jice\": it contains a control character"),
        ("Sistema", "the name Sistema is reserved for the server's notices"),
        ("SISTEMA", "the name SISTEMA is reserved for the server's notices"),
    ] {
        let mut c = server.original(name, Duration::ZERO).await;
        assert_eq!(c.rest().await, format!("0:Sistema:{why}\n"), "{name:?}");
    }
    match connect(ClientConfig::new(server.addr.to_string(), n("sistema"))).await {
        Err(ServerError::Core(CoreError::Rejected { code: ErrorCode::InvalidName, .. })) => {}
        other => panic!("a native user took the server's name: {:?}", other.map(|_| ())),
    }
    server.stop().await;
}

#[tokio::test]
async fn garbage_huge_clocks_long_messages_and_impersonation_change_nothing() {
    let server = start(config(None)).await;
    let mut alice = server.join("alice").await;
    let mut carol = server.original("carol", Duration::ZERO).await;
    carol.message().await;
    for garbage in [&b"\xff\xfe\xfd"[..], b"lol", b"1:MSG", b"x:BROADCAST:ALL:no clock", b"1:broadcast:ALL:lower case"]
    {
        carol.send(garbage).await;
        pause().await;
    }
    carol.send(b"99999999999999999999999:BROADCAST:ALL:from the future").await;
    let (_, from, text) = carol.message().await;
    assert_eq!(from, "Sistema");
    assert!(
        text.starts_with("Mensagem não enviada: your Lamport clock (18446744073709551615) is more than 1000000 ahead"),
        "{text}"
    );
    pause().await;
    carol.command("BROADCAST:ALL:still here").await;
    let m = next_message(&mut alice).await;
    assert_eq!(m.body, "still here", "nothing before it was delivered");
    assert!(m.lamport.counter < 1000, "the server's clock did not jump: {}", m.lamport);
    let ack = "Mensagem enviada para todos (1 usuário(s))";
    assert_eq!(carol.message().await, (m.lamport.counter, "Sistema".into(), ack.into()));

    // One send larger than a read: what one read got (at most 64 KiB) is one message; the rest,
    // without a clock, is ignored.
    let big = format!("{}:BROADCAST:ALL:{}", carol.clock + 1, "x".repeat(100 * 1024));
    carol.send(big.as_bytes()).await;
    let m = next_message(&mut alice).await;
    assert!(m.body.len() < chat_server::text::MAX_READ && m.body.bytes().all(|b| b == b'x'), "{}", m.body.len());
    assert_eq!(carol.message().await.2, ack);
    pause().await;
    carol.command("BROADCAST:ALL:after").await;
    assert_eq!(next_message(&mut alice).await.body, "after");
    assert_eq!(carol.message().await.2, ack);

    // A native user's text cannot start a line of its own for the original client.
    alice.broadcast("hi\n999:Sistema:you are banned").await.unwrap();
    let (_, from, text) = carol.message().await;
    assert_eq!((from.as_str(), text.as_str()), ("alice (broadcast)", "hi\\n999:Sistema:you are banned"));
    server.stop().await;
}

#[tokio::test]
async fn a_text_reader_that_cannot_keep_up_is_disconnected_and_the_others_are_told() {
    let server = start(config(None)).await;
    let mut alice = server.join("alice").await;
    // bob reads raw frames, to see why carol left.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    handshake(&mut stream, Role::Client).await.unwrap();
    let mut bob: Connection<TcpStream, ServerFrame, ClientFrame> = Connection::new(stream);
    bob.write_frame(&ClientFrame::Login { name: n("bob") }).await.unwrap();
    let mut carol = server.original("carol", Duration::ZERO).await;
    // carol stops reading; alice sends more than a text connection may have waiting.
    const COUNT: usize = chat_server::text::MAX_QUEUED_LINES + 100;
    for i in 0..COUNT {
        alice.send(Recipients::Broadcast, format!("flood {i}")).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let reason = loop {
        assert!(Instant::now() < deadline, "carol was never disconnected");
        match timeout(WAIT, bob.read_frame()).await.expect("bob keeps receiving").unwrap() {
            Some(ServerFrame::Left { name, reason }) if name == n("carol") => break reason,
            Some(ServerFrame::Ping) => bob.write_frame(&ClientFrame::Pong).await.unwrap(),
            Some(_) => {}
            None => panic!("bob was disconnected"),
        }
    };
    assert_eq!(reason, "slow_consumer");
    let rest = carol.rest().await;
    assert!(
        rest.ends_with(":Sistema:Conexão encerrada: too slow: more than 1024 lines waiting to be written\n"),
        "{}",
        &rest[rest.len().saturating_sub(200)..]
    );
    assert!(rest.lines().count() < COUNT, "the queue was dropped, not written");
    let sent = ClientFrame::Send {
        req: 1,
        recipients: Recipients::Broadcast,
        body: "alive".into(),
        sent_at: Timestamp::new(0, NodeId(0)),
        key: 0,
    };
    bob.write_frame(&sent).await.unwrap();
    while next_message(&mut alice).await.body != "alive" {}
    server.stop().await;
}

#[tokio::test]
async fn a_busy_server_rejects_text_connections_in_words_the_client_reads() {
    let server = start(ServerConfig { max_connections: 1, ..config(None) }).await;
    let _alice = server.join("alice").await;
    let mut c = server.raw().await;
    c.send(b"CONNECT").await;
    assert_eq!(c.rest().await, "REJECT:the server is at its connection limit\n");
    server.stop().await;
}

#[tokio::test]
async fn accounts_and_the_text_protocol_do_not_go_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { auth: chat_server::router::AuthMode::Accounts, ..config(Some(dir.path())) };
    match Server::bind(config).await {
        Err(ServerError::InvalidConfig { setting: "text_listen", .. }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// In virtual time on an in-memory network: each line comes at its paced time and in a read of its
/// own, as the original client needs.
#[tokio::test(start_paused = true)]
async fn each_line_comes_alone_and_on_time() {
    let net = MemoryNetwork::new();
    let main: SocketAddr = "10.0.0.1:7878".parse().unwrap();
    let text: SocketAddr = "10.0.0.1:12345".parse().unwrap();
    let config =
        ServerConfig { data_dir: None, limits: None, heartbeat: Duration::from_secs(600), ..Default::default() };
    let server =
        Server::with_listener(net.bind(main).unwrap(), config).unwrap().with_text_listener(net.bind(text).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let mut stream = net.dialer("10.0.1.1:5000".parse().unwrap()).connect(main).await.unwrap();
    handshake(&mut stream, Role::Client).await.unwrap();
    let mut alice: Connection<_, ServerFrame, ClientFrame> = Connection::new(stream);
    alice.write_frame(&ClientFrame::Login { name: n("alice") }).await.unwrap();
    assert!(matches!(alice.read_frame().await.unwrap(), Some(ServerFrame::Welcome { .. })));

    let stream = net.dialer("10.0.1.2:5000".parse().unwrap()).connect(text).await.unwrap();
    let mut carol = Original { stream, clock: 0 };
    let t0 = Instant::now();
    carol.send(b"CONNECT").await;
    let mut at = Vec::new();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(carol.recv().await);
        at.push(t0.elapsed());
    }
    carol.send(b"5:carol").await;
    got.push(carol.recv().await);
    at.push(t0.elapsed());
    for i in 0..3 {
        let send = ClientFrame::Send {
            req: i,
            recipients: Recipients::Broadcast,
            body: format!("m{i}"),
            sent_at: Timestamp::new(0, NodeId(0)),
            key: 0,
        };
        alice.write_frame(&send).await.unwrap();
    }
    for _ in 0..3 {
        got.push(carol.recv().await);
        at.push(t0.elapsed());
    }
    assert_eq!(
        got,
        [
            "ACCEPT:0:Bem-vindo ao servidor\n",
            "0:Digite seu nome: \n",
            "0:Sistema:Usuários conectados: alice, carol\n",
            "1:alice (broadcast):m0\n",
            "2:alice (broadcast):m1\n",
            "3:alice (broadcast):m2\n",
        ]
    );
    let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
    assert!(ms[1] - ms[0] >= 200, "the prompt waits PROMPT_DELAY: {ms:?}");
    for pair in ms[2..].windows(2) {
        assert!(pair[1] - pair[0] >= 30, "lines are WRITE_GAP apart: {ms:?}");
    }
    let _ = stop.send(());
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}
