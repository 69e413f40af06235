//! TLS and accounts, in process over loopback: what a passive recorder sees, how clients trust a
//! certificate (pinned, first use, a changed one refused), plaintext and TLS meeting each other, and
//! logins with passwords and tokens.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::{Chat, CoreError, ErrorCode, Event, UserName};
use chat_server::ServerError;
use chat_server::accounts::Accounts;
use chat_server::client::{ClientConfig, ServerTransport, connect};
use chat_server::protocol::Credential;
use chat_server::router::AuthMode;
use chat_server::server::{Server, ServerConfig};
use chat_server::tls::{Fingerprint, TlsClient, TlsServer, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn start(dir: &Path, tls: Option<TlsServer>, auth: AuthMode) -> Running {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.to_path_buf()),
            tls,
            auth,
            ..ServerConfig::default()
        };
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running { addr, stop: Some(stop), task }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

fn client(addr: impl ToString, name: &str, trust: Option<Trust>, credential: Option<Credential>) -> ClientConfig {
    let mut config = ClientConfig::new(addr.to_string(), n(name));
    config.tls = trust.map(|trust| TlsClient { trust });
    config.credential = credential;
    config
}

async fn next_text(chat: &mut Chat) -> String {
    loop {
        match timeout(WAIT, chat.next_event()).await.unwrap() {
            Some(Event::Message(m)) => return m.body,
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
}

/// A TCP relay from a free port to `to` that records every byte it passes, both ways.
async fn recording_relay(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let Ok(mut outbound) = TcpStream::connect(to).await else { return };
            let record = record.clone();
            tokio::spawn(async move {
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = outbound.split();
                let (a, b) = (record.clone(), record);
                let up = async {
                    let mut buf = [0u8; 4096];
                    while let Ok(k) = ri.read(&mut buf).await {
                        if k == 0 || wo.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        a.lock().unwrap().extend_from_slice(&buf[..k]);
                    }
                };
                let down = async {
                    let mut buf = [0u8; 4096];
                    while let Ok(k) = ro.read(&mut buf).await {
                        if k == 0 || wi.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        b.lock().unwrap().extend_from_slice(&buf[..k]);
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_recorder_between_tls_endpoints_sees_none_of_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsServer::self_signed(dir.path(), [127, 0, 0, 1].into()).unwrap();
    let pinned = Trust::Pinned(tls.fingerprint);
    let server = Running::start(dir.path(), Some(tls), AuthMode::Open).await;
    let (relay, seen) = recording_relay(server.addr).await;
    let mut alice = Chat::new(connect(client(relay, "alice", Some(pinned.clone()), None)).await.unwrap());
    let mut bob = Chat::new(connect(client(relay, "bob", Some(pinned), None)).await.unwrap());
    alice.broadcast("the launch code is 0000").await.unwrap();
    assert_eq!(next_text(&mut bob).await, "the launch code is 0000");
    let recorded = seen.lock().unwrap().clone();
    assert!(recorded.len() > 1000, "the relay carried the traffic ({} bytes)", recorded.len());
    let hay = String::from_utf8_lossy(&recorded);
    assert!(!hay.contains("launch code") && !hay.contains("alice"), "the recorder read the traffic");
    drop((alice, bob));
    server.stop().await;
}

#[tokio::test]
async fn first_use_is_remembered_and_a_changed_certificate_is_refused() {
    let known = tempfile::tempdir().unwrap();
    let file = known.path().join("known_servers");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Running::start(
        d1.path(),
        Some(TlsServer::self_signed(d1.path(), [127, 0, 0, 1].into()).unwrap()),
        AuthMode::Open,
    )
    .await;
    let addr = first.addr;
    let c = connect(client(addr, "alice", Some(Trust::FirstUse(file.clone())), None)).await.unwrap();
    drop(c);
    let remembered = std::fs::read_to_string(&file).unwrap();
    assert!(remembered.starts_with(&format!("{addr} SHA256:")), "{remembered}");
    // The same server again: known, accepted.
    let c = connect(client(addr, "alice2", Some(Trust::FirstUse(file.clone())), None)).await.unwrap();
    drop(c);
    first.stop().await;
    // Another certificate at the same address (an impostor): refused, loudly.
    let config = ServerConfig {
        listen: addr,
        data_dir: Some(d2.path().to_path_buf()),
        tls: Some(TlsServer::self_signed(d2.path(), [127, 0, 0, 1].into()).unwrap()),
        ..ServerConfig::default()
    };
    let Ok(server) = Server::bind(config).await else {
        println!("skipped the impostor half: port {} was taken meanwhile", addr.port());
        return;
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    match connect(client(addr, "alice", Some(Trust::FirstUse(file.clone())), None)).await {
        Err(ServerError::Tls(message)) => assert!(message.contains("HAS CHANGED"), "{message}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a changed certificate was accepted"),
    }
    let _ = stop.send(());
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn plaintext_and_tls_meeting_each_other_say_so_in_one_line() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tls = TlsServer::self_signed(d1.path(), [127, 0, 0, 1].into()).unwrap();
    let pinned = Trust::Pinned(tls.fingerprint);
    let tls_server = Running::start(d1.path(), Some(tls), AuthMode::Open).await;
    let plain_server = Running::start(d2.path(), None, AuthMode::Open).await;
    match connect(client(tls_server.addr, "alice", None, None)).await {
        Err(ServerError::Core(CoreError::Rejected { code: ErrorCode::Protocol, message })) => {
            assert_eq!(message, "this server requires TLS: connect with --tls")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    match connect(client(plain_server.addr, "alice", Some(pinned), None)).await {
        Err(ServerError::Tls(message)) => assert!(message.contains("plaintext server"), "{message}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let pinned_wrong = Trust::Pinned(Fingerprint::of(b"another certificate"));
    match connect(client(tls_server.addr, "alice", Some(pinned_wrong), None)).await {
        Err(ServerError::Tls(message)) => assert!(message.contains("not the pinned"), "{message}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    tls_server.stop().await;
    plain_server.stop().await;
}

async fn refused(config: ClientConfig) -> (ErrorCode, String) {
    match connect(config).await {
        Err(ServerError::Core(CoreError::Rejected { code, message })) => (code, message),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("admitted"),
    }
}

#[tokio::test]
async fn accounts_admit_passwords_and_tokens_and_refuse_everything_else_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut accounts = Accounts::load(dir.path()).unwrap();
    accounts.add(n("alice"), "correct horse battery").unwrap();
    let token = accounts.issue_token(&n("alice")).unwrap();
    accounts.save().unwrap();
    let server = Running::start(dir.path(), None, AuthMode::Accounts).await;
    let password = |p: &str| Some(Credential::Password(p.into()));
    let ok: ServerTransport =
        connect(client(server.addr, "ALICE", None, password("correct horse battery"))).await.unwrap();
    assert_eq!(chat_core::Transport::local_name(&ok).as_str(), "alice", "logged in under the registered name");
    drop(ok);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let by_token = connect(client(server.addr, "alice", None, Some(Credential::Token(token)))).await.unwrap();
    drop(by_token);
    let wrong = refused(client(server.addr, "alice", None, password("wrong horse battery"))).await;
    let unknown = refused(client(server.addr, "mallory", None, password("correct horse battery"))).await;
    assert_eq!(wrong, unknown, "the same answer for a wrong password and an unknown account");
    assert_eq!(wrong.0, ErrorCode::AuthFailed);
    let none = refused(client(server.addr, "bob", None, None)).await;
    assert_eq!(none.0, ErrorCode::AuthFailed);
    server.stop().await;
}

#[tokio::test]
async fn a_registered_name_cannot_be_taken_on_an_open_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(dir.path(), None, AuthMode::Open).await;
    let _carol = connect(client(server.addr, "carol", None, None)).await.unwrap();
    // Registered while the server runs: it notices the file within a second.
    let mut accounts = Accounts::load(dir.path()).unwrap();
    accounts.add(n("alice"), "correct horse battery").unwrap();
    accounts.save().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _nudge = connect(client(server.addr, "dave", None, None)).await.unwrap();
    let (code, message) = refused(client(server.addr, "Alice", None, None)).await;
    assert_eq!(code, ErrorCode::NameTaken, "{message}");
    let alice = connect(client(server.addr, "alice", None, Some(Credential::Password("correct horse battery".into()))))
        .await
        .unwrap();
    drop(alice);
    server.stop().await;
}
