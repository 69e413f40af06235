//! [`ServerTransport`]: the program's handle on a session, a [`chat_core::Transport`].
//!
//! Every method is a short hand-off to the session task (`task.rs`) through bounded channels: a
//! [`Request`] goes in with a oneshot for its [`Answer`], events come out. Once the task has ended,
//! every request fails with [`CoreError::Closed`].

use async_trait::async_trait;
use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, OutgoingMessage, PeerInfo, RoomInfo, RoomName, SendReceipt, Transport,
    UserName,
};
use tokio::sync::{mpsc, oneshot};

use super::session::{Answer, Request, closed};
use super::task::Reply;

/// A logged-in session with a chat server.
pub struct ServerTransport {
    /// The name, as registered.
    name: UserName,
    /// Who was online at login.
    online: Vec<UserName>,
    /// The rooms this user was in at login.
    rooms: Vec<RoomName>,
    /// Requests to the session task.
    requests: mpsc::Sender<(Request, Reply)>,
    /// Events from the session task.
    events: mpsc::Receiver<Event>,
    /// Whether `leave` was called.
    left: bool,
}

impl ServerTransport {
    /// The handle of a session task started by [`super::connect_with`].
    pub(super) fn new(
        name: UserName,
        online: Vec<UserName>,
        rooms: Vec<RoomName>,
        requests: mpsc::Sender<(Request, Reply)>,
        events: mpsc::Receiver<Event>,
    ) -> Self {
        ServerTransport { name, online, rooms, requests, events, left: false }
    }

    /// The users online when this session logged in (including itself).
    pub fn online_at_login(&self) -> &[UserName] {
        &self.online
    }

    /// The rooms this user was a member of when it logged in (memberships last across sessions).
    pub fn rooms_at_login(&self) -> &[RoomName] {
        &self.rooms
    }

    /// Hands `request` to the session task and waits for its answer.
    async fn call(&self, request: Request) -> Result<Answer, CoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((request, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// The session core answers each request with its own kind; anything else is a bug reported as one.
fn wrong_kind(answer: Answer) -> CoreError {
    CoreError::Rejected { code: ErrorCode::Protocol, message: format!("unexpected answer {answer:?}") }
}

#[async_trait]
impl Transport for ServerTransport {
    fn local_name(&self) -> &UserName {
        &self.name
    }

    async fn send(&self, msg: OutgoingMessage) -> Result<SendReceipt, CoreError> {
        match self.call(Request::Send(msg)).await? {
            Answer::Sent(receipt) => Ok(receipt),
            other => Err(wrong_kind(other)),
        }
    }

    async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, CoreError> {
        match self.call(Request::Peers).await? {
            Answer::Peers(peers) => Ok(peers),
            other => Err(wrong_kind(other)),
        }
    }

    async fn history(&self, room: Option<RoomName>, limit: usize) -> Result<Vec<ChatMessage>, CoreError> {
        match self.call(Request::History { limit, room }).await? {
            Answer::History(messages) => Ok(messages),
            other => Err(wrong_kind(other)),
        }
    }

    async fn join_room(&self, room: RoomName) -> Result<Vec<ChatMessage>, CoreError> {
        match self.call(Request::JoinRoom(room)).await? {
            Answer::History(messages) => Ok(messages),
            other => Err(wrong_kind(other)),
        }
    }

    async fn part_room(&self, room: RoomName) -> Result<(), CoreError> {
        match self.call(Request::PartRoom(room)).await? {
            Answer::Done => Ok(()),
            other => Err(wrong_kind(other)),
        }
    }

    async fn rooms(&self) -> Result<Vec<RoomInfo>, CoreError> {
        match self.call(Request::Rooms).await? {
            Answer::Rooms(rooms) => Ok(rooms),
            other => Err(wrong_kind(other)),
        }
    }

    async fn who(&self, room: Option<RoomName>) -> Result<Vec<PeerInfo>, CoreError> {
        match self.call(Request::Who(room)).await? {
            Answer::Peers(peers) => Ok(peers),
            other => Err(wrong_kind(other)),
        }
    }

    async fn leave(&mut self) -> Result<(), CoreError> {
        if self.left {
            return Ok(());
        }
        self.left = true;
        // Whether the session was still open or not, it is over now.
        let _ = self.call(Request::Leave).await;
        self.events.close();
        Ok(())
    }
}
