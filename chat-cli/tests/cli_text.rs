//! Seed 000's text protocol through the real binary: `serve --text-listen`, a client that behaves
//! exactly like the original Python client (one `recv(1024)` per message, the one-second pause
//! after `ACCEPT`, `int(clock)`), a person typing into `nc`, and `chat-cli` users, all in one chat.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, WAIT, spawn};

/// The original client sleeps this long between reading `ACCEPT` and reading the prompt.
const ORIGINAL_PAUSE: Duration = Duration::from_secs(1);

/// The original client (`multithread_client_socket.py`), message for message, with blocking
/// sockets as it has.
struct Original {
    stream: TcpStream,
    clock: u64,
}

impl Original {
    /// `ChatClient.__init__`: CONNECT, ACCEPT, the pause, the prompt, the name.
    fn connect(addr: &str, name: &str) -> Original {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut me = Original { stream, clock: 0 };
        me.stream.write_all(b"CONNECT").unwrap();
        let response = me.recv();
        let parts: Vec<&str> = response.splitn(3, ':').collect();
        assert_eq!(parts[0], "ACCEPT", "{response:?}");
        me.update(parts[1].parse().expect("int(parts[1])"));
        assert_eq!(parts[2], "Bem-vindo ao servidor\n", "ACCEPT came alone");
        std::thread::sleep(ORIGINAL_PAUSE);
        let prompt = me.recv();
        let (clock, prompt) = prompt.split_once(':').expect("<clock>:<prompt>");
        me.update(clock.parse().expect("int(prompt_parts[0])"));
        assert_eq!(prompt, "Digite seu nome: \n");
        me.clock += 1;
        let login = format!("{}:{name}", me.clock);
        me.stream.write_all(login.as_bytes()).unwrap();
        me
    }

    /// `client.recv(1024).decode()`.
    fn recv(&mut self) -> String {
        let mut buf = [0u8; 1024];
        let got = self.stream.read(&mut buf).expect("a message in time");
        String::from_utf8(buf[..got].to_vec()).expect("the original decodes strictly")
    }

    fn update(&mut self, server: u64) {
        self.clock = self.clock.max(server) + 1;
    }

    /// One message as `receive_messages` parses it, the line break taken off the text.
    fn message(&mut self) -> (u64, String, String) {
        let message = self.recv();
        let parts: Vec<&str> = message.splitn(3, ':').collect();
        assert!(parts.len() == 3 && parts[2].matches('\n').count() == 1, "one message per read: {message:?}");
        let clock: u64 = parts[0].parse().unwrap_or_else(|_| panic!("int() fails on {message:?}"));
        self.update(clock);
        (clock, parts[1].to_string(), parts[2].trim_end().to_string())
    }

    /// What `send_messages` sends for a typed `COMMAND:target:text`.
    fn command(&mut self, typed: &str) {
        self.clock += 1;
        self.stream.write_all(format!("{}:{typed}", self.clock).as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // a person types the next line later
    }
}

fn server(extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--text-listen", "127.0.0.1:0", "--json"];
    args.extend_from_slice(extra);
    let mut server = spawn("server", &args);
    let listening = server.event_of("listening");
    let addr = listening["addr"].as_str().unwrap().to_string();
    let text = listening["text_addr"].as_str().expect("the listening event names the text listener").to_string();
    (server, addr, text)
}

fn join(name: &str, addr: &str) -> Proc {
    let mut p = spawn(name, &["--json", "--name", name, "--server", addr]);
    p.event_of("ready");
    p
}

/// The next message event as (from, kind, to, text, lamport).
fn message(p: &mut Proc) -> (String, String, Vec<String>, String, u64) {
    let m = p.event_of("message");
    let to = m["to"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    let s = |k: &str| m[k].as_str().unwrap().to_string();
    (s("from"), s("kind"), to, s("text"), m["lamport"].as_u64().unwrap())
}

/// Skips messages until one says `text`; its Lamport counter.
fn message_saying(p: &mut Proc, text: &str) -> u64 {
    for _ in 0..100 {
        let (.., said, l) = message(p);
        if said == text {
            return l;
        }
    }
    panic!("{}: no message {text:?}", p.name)
}

#[test]
fn the_original_client_chats_with_chat_cli_users() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, text) = server(&["--data-dir", dir.path().join("data").to_str().unwrap()]);
    let mut alice = join("alice", &addr);
    let mut bob = join("bob", &addr);
    let mut carol = Original::connect(&text, "carol");
    assert_eq!(carol.message(), (0, "Sistema".into(), "Usuários conectados: alice, bob, carol".into()));
    assert_eq!(alice.event_of("joined")["name"], "bob");
    assert_eq!(alice.event_of("joined")["name"], "carol");

    // chat-cli → the original client, in the original's forms, with the Lamport clock every front end shows.
    alice.say("olá a todos");
    let (.., l) = message(&mut bob);
    assert_eq!(carol.message(), (l, "alice (broadcast)".into(), "olá a todos".into()));
    alice.say("MSG:carol:só pra você");
    let (l1, from, said) = carol.message();
    assert_eq!((from.as_str(), said.as_str()), ("alice", "só pra você"));
    bob.say("/mc alice,carol equipe");
    let l = message_saying(&mut alice, "equipe");
    assert!(l > l1);
    assert_eq!(carol.message(), (l, "bob (multicast)".into(), "equipe".into()));

    // The original client → chat-cli, acknowledged as the original server did.
    carol.command("MSG:alice:oi alice");
    message_saying(&mut alice, "oi alice");
    carol.command("MULTICAST:alice,bob:oi vocês");
    let (from, kind, to, said, l) = message(&mut alice);
    assert_eq!((from.as_str(), kind.as_str(), said.as_str()), ("carol", "multicast", "oi vocês"));
    assert_eq!(to, ["alice", "bob"]);
    assert_eq!(message_saying(&mut bob, "oi vocês"), l);
    assert_eq!(carol.message(), (l, "Sistema".into(), "Mensagem enviada para 2 usuário(s)".into()));
    carol.command("BROADCAST:ALL:oi todos");
    let (from, kind, _, said, l) = message(&mut bob);
    assert_eq!((from.as_str(), kind.as_str(), said.as_str()), ("carol", "broadcast", "oi todos"));
    assert_eq!(message_saying(&mut alice, "oi todos"), l);
    assert_eq!(carol.message(), (l, "Sistema".into(), "Mensagem enviada para todos (2 usuário(s))".into()));

    // `sair` closes the socket: a leave, announced to chat-cli users.
    drop(carol);
    assert_eq!(alice.event_of("left")["name"], "carol");
    assert_eq!(alice.finish(), 0);
    assert_eq!(bob.finish(), 0);
    assert_eq!(server.terminate(), 0);
}

/// A person with `nc` (lines typed end with a line break; the server's lines end with one too).
#[test]
fn a_person_with_nc_chats_too() {
    let (server, addr, text) = server(&["--no-log"]);
    let mut alice = join("alice", &addr);
    let stream = TcpStream::connect(&text).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut typed = stream.try_clone().unwrap();
    let mut lines = BufReader::new(stream).lines().map(|l| l.expect("a line in time"));
    let mut transcript = Vec::new();
    let mut say = |line: &str, transcript: &mut Vec<String>| {
        typed.write_all(format!("{line}\n").as_bytes()).unwrap();
        transcript.push(format!("> {line}"));
    };
    say("CONNECT", &mut transcript);
    transcript.push(lines.next().unwrap());
    transcript.push(lines.next().unwrap());
    say("dave", &mut transcript);
    transcript.push(lines.next().unwrap());
    say("0:BROADCAST:ALL:olá, sou o dave", &mut transcript);
    let (from, _, _, said, l) = message(&mut alice);
    assert_eq!((from.as_str(), said.as_str()), ("dave", "olá, sou o dave"));
    transcript.push(lines.next().unwrap());
    alice.say("MSG:dave:oi dave");
    let (.., l2) = message(&mut alice);
    transcript.push(lines.next().unwrap());
    say("0:MSG:nobody:alguém?", &mut transcript);
    transcript.push(lines.next().unwrap());
    assert_eq!(
        transcript,
        [
            "> CONNECT".to_string(),
            "ACCEPT:0:Bem-vindo ao servidor".into(),
            "0:Digite seu nome: ".into(),
            "> dave".into(),
            "0:Sistema:Usuários conectados: alice, dave".into(),
            "> 0:BROADCAST:ALL:olá, sou o dave".into(),
            format!("{l}:Sistema:Mensagem enviada para todos (1 usuário(s))"),
            format!("{l2}:alice:oi dave"),
            "> 0:MSG:nobody:alguém?".into(),
            format!("{l2}:Sistema:Usuário não encontrado."),
        ]
    );
    println!("{}", transcript.join("\n"));
    assert_eq!(server.terminate(), 0);
    assert_eq!(lines.next().unwrap(), format!("{l2}:Sistema:Conexão encerrada: the server is shutting down"));
    drop(alice);
}

#[test]
fn the_text_listener_keeps_the_safe_defaults() {
    let run =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_chat-cli")).args(args).stdin(Stdio::null()).output().unwrap();
    // Beyond loopback: plaintext without credentials needs --insecure (the check comes before binding).
    let out = run(&["serve", "--no-log", "--listen", "127.0.0.1:0", "--text-listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));
    // With accounts nobody could log in over it.
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--auth", "accounts", "--text-listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth accounts"));
}
