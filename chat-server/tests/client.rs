//! The real client (`connect_with`) over an in-memory stream, against a fake server written here
//! with chat-transport's handshake and framing: the client's shell and core together, no sockets.

use chat_server::protocol::{Enter, SessionInfo};
use std::net::SocketAddr;
use std::time::Duration;

use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, MessageId, NodeId, OutgoingMessage, PeerInfo, Recipients, SendReceipt,
    Timestamp, Transport, UserName,
};
use chat_server::ServerError;
use chat_server::client::{ClientConfig, ServerTransport, connect_with};
use chat_server::protocol::{ClientFrame, ServerFrame};
use chat_transport::memory::{MemoryListener, MemoryNetwork, MemoryStream};
use chat_transport::{Connection, Listener, Role, handshake};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

type ServerSide = Connection<MemoryStream, ClientFrame, ServerFrame>;

/// A new session's `Welcome` part.
fn fresh() -> SessionInfo {
    SessionInfo { token: "tok".into(), grace_ms: 60_000, rooms: vec![], resumed: None, offline: 0 }
}

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 7878))
}

fn msg(seq: u64, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n("bob"),
        recipients: Recipients::Broadcast,
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }
}

/// The fake server's side of a login: accept, handshake, read `Login`, answer with `answer`.
async fn accept_login(listener: &mut MemoryListener, answer: ServerFrame) -> ServerSide {
    let (mut stream, _) = listener.accept().await.unwrap();
    assert_eq!(handshake(&mut stream, Role::Server).await.unwrap(), Role::Client);
    let mut conn: ServerSide = Connection::new(stream);
    let enter = Enter { name: n("alice"), credential: None, resume: None, quiet: false };
    assert_eq!(conn.read_frame().await.unwrap(), Some(ClientFrame::Enter(enter)));
    conn.write_frame(&answer).await.unwrap();
    conn
}

/// alice connected through the in-memory network to a fake server announcing `heartbeat_ms`
/// (without reconnection: these tests are about one connection's life).
async fn logged_in(heartbeat_ms: u64) -> (ServerTransport, ServerSide) {
    let net = MemoryNetwork::new();
    let mut listener = net.bind(addr(1)).unwrap();
    let config =
        ClientConfig { reconnect: None, ..ClientConfig::new(listener.local_addr().unwrap().to_string(), n("alice")) };
    let welcome =
        ServerFrame::Welcome { name: n("alice"), online: vec![n("alice"), n("bob")], heartbeat_ms, session: fresh() };
    let (client, server) = timeout(WAIT, async {
        tokio::join!(connect_with(net.dialer(addr(2)), config), accept_login(&mut listener, welcome))
    })
    .await
    .expect("login in time");
    let client = client.unwrap();
    assert_eq!(client.online_at_login(), [n("alice"), n("bob")]);
    (client, server)
}

async fn next_frame(server: &mut ServerSide) -> Option<ClientFrame> {
    timeout(WAIT, server.read_frame()).await.expect("a frame in time").unwrap()
}

async fn next_event(client: &mut ServerTransport) -> Option<Event> {
    timeout(WAIT, client.recv()).await.expect("an event in time")
}

#[tokio::test]
async fn requests_answers_events_and_leave_cross_an_in_memory_stream() {
    let (mut client, mut server) = logged_in(60_000).await;

    let outgoing = OutgoingMessage {
        recipients: Recipients::Unicast(n("bob")),
        body: "hi bob".into(),
        sent_at: Timestamp::new(3, NodeId(0)),
    };
    let id = MessageId::new(NodeId::SERVER, 1);
    let fake = async {
        let frame = next_frame(&mut server).await;
        let expected = ClientFrame::Send {
            req: 1,
            recipients: outgoing.recipients.clone(),
            body: "hi bob".into(),
            sent_at: outgoing.sent_at,
            key: 1, // the request ID: a retry after a resume is stored once
        };
        assert_eq!(frame, Some(expected));
        server.write_frame(&ServerFrame::Sent { req: 1, id, unknown: vec![], queued: vec![] }).await.unwrap();
    };
    let (receipt, ()) = tokio::join!(client.send(outgoing.clone()), fake);
    assert_eq!(receipt, Ok(SendReceipt { id, unknown: vec![], queued: vec![] }));

    let fake = async {
        assert_eq!(next_frame(&mut server).await, Some(ClientFrame::History { req: 2, limit: 10, room: None }));
        let first = ServerFrame::History { req: 2, messages: vec![msg(1, "a"), msg(2, "b")], done: false, room: None };
        server.write_frame(&first).await.unwrap();
        server
            .write_frame(&ServerFrame::History { req: 2, messages: vec![msg(3, "c")], done: true, room: None })
            .await
            .unwrap();
    };
    let (history, ()) = tokio::join!(client.history(None, 10), fake);
    assert_eq!(history, Ok(vec![msg(1, "a"), msg(2, "b"), msg(3, "c")]));

    let fake = async {
        assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Peers { req: 3 }));
        server.write_frame(&ServerFrame::Peers { req: 3, names: vec![n("alice"), n("bob")] }).await.unwrap();
    };
    let (peers, ()) = tokio::join!(client.peers(), fake);
    assert_eq!(peers, Ok(vec![PeerInfo::named(n("alice")), PeerInfo::named(n("bob"))]));

    server.write_frame(&ServerFrame::Joined { name: n("carol") }).await.unwrap();
    server.write_frame(&ServerFrame::Message(msg(4, "hello"))).await.unwrap();
    server
        .write_frame(&ServerFrame::Rejected { req: 77, code: ErrorCode::TooLong, message: "x".into() })
        .await
        .unwrap();
    assert_eq!(next_event(&mut client).await, Some(Event::PeerJoined(PeerInfo::named(n("carol")))));
    assert_eq!(next_event(&mut client).await, Some(Event::Message(msg(4, "hello"))));
    assert_eq!(next_event(&mut client).await, Some(Event::Error { code: ErrorCode::TooLong, message: "x".into() }));

    server.write_frame(&ServerFrame::Ping).await.unwrap();
    assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Pong));

    timeout(WAIT, client.leave()).await.unwrap().unwrap();
    assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Leave));
    assert_eq!(next_frame(&mut server).await, None, "the client closes its side after Leave");
    assert_eq!(next_event(&mut client).await, None);
    assert!(matches!(client.peers().await, Err(CoreError::Closed(_))));
}

#[tokio::test]
async fn refused_logins_fail_connect_with_the_servers_code() {
    for code in [ErrorCode::NameTaken, ErrorCode::Busy] {
        let net = MemoryNetwork::new();
        let mut listener = net.bind(addr(1)).unwrap();
        let config = ClientConfig::new(addr(1).to_string(), n("alice"));
        let refused = ServerFrame::Refused { code, message: "no".into() };
        let (client, _server) = timeout(WAIT, async {
            tokio::join!(connect_with(net.dialer(addr(2)), config), accept_login(&mut listener, refused))
        })
        .await
        .unwrap();
        match client {
            Err(ServerError::Core(CoreError::Rejected { code: got, message })) => {
                assert_eq!((got, message.as_str()), (code, "no"));
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a refused login connected"),
        }
    }
}

#[tokio::test]
async fn nobody_listening_is_unreachable() {
    let net = MemoryNetwork::new();
    let config = ClientConfig::new(addr(9).to_string(), n("alice"));
    match connect_with(net.dialer(addr(2)), config).await {
        Err(ServerError::Unreachable { addr: at, reason }) => {
            assert_eq!(at, addr(9).to_string());
            assert!(reason.contains("nobody listens"), "{reason}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("connected to nobody"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_is_pinged_every_heartbeat_then_given_up() {
    let (mut client, mut server) = logged_in(100).await;
    let start = tokio::time::Instant::now();
    assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Ping));
    assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Ping));
    let end = next_event(&mut client).await;
    assert_eq!(
        end,
        Some(Event::Disconnected { code: ErrorCode::Disconnected, reason: "the server stopped answering".into() })
    );
    assert_eq!(start.elapsed(), Duration::from_millis(300), "three heartbeats of silence, in virtual time");
    assert_eq!(next_event(&mut client).await, None);
    assert!(matches!(
        client
            .send(OutgoingMessage {
                recipients: Recipients::Broadcast,
                body: "late".into(),
                sent_at: Timestamp::new(1, NodeId(0)),
            })
            .await,
        Err(CoreError::Closed(_))
    ));
}

#[tokio::test]
async fn closing_answers_pending_requests_and_ends_with_the_servers_code() {
    let (mut client, mut server) = logged_in(60_000).await;
    let fake = async {
        assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Peers { req: 1 }));
        let closing =
            ServerFrame::Closing { code: ErrorCode::ShuttingDown, reason: "the server is shutting down".into() };
        server.write_frame(&closing).await.unwrap();
    };
    let (peers, ()) = tokio::join!(client.peers(), fake);
    assert!(matches!(peers, Err(CoreError::Closed(_))), "{peers:?}");
    assert_eq!(
        next_event(&mut client).await,
        Some(Event::Disconnected { code: ErrorCode::ShuttingDown, reason: "the server is shutting down".into() })
    );
    assert_eq!(next_event(&mut client).await, None);
}

#[tokio::test]
async fn a_handle_dropped_without_leave_still_leaves() {
    let (client, mut server) = logged_in(60_000).await;
    drop(client);
    assert_eq!(next_frame(&mut server).await, Some(ClientFrame::Leave));
    assert_eq!(next_frame(&mut server).await, None);
}
