//! `Chat`: one API for programs, whatever the topology.

use crate::{
    ChatMessage, CoreError, Event, LamportClock, MessageBuffer, NodeId, OutgoingMessage, PeerInfo, Recipients,
    RoomInfo, RoomName, SendReceipt, Timestamp, Transport, UserName, buffer::Inserted, message::check_body,
};

/// A chat session over any [`Transport`].
///
/// It keeps the local Lamport clock (ticked on every send, advanced on every receipt), drops
/// duplicate deliveries and remembers recent messages.
///
/// ```no_run
/// # async fn demo(transport: impl chat_core::Transport + 'static) -> Result<(), chat_core::CoreError> {
/// use chat_core::{Chat, Event, UserName};
/// let mut chat = Chat::new(transport);
/// chat.broadcast("hello everyone").await?;
/// chat.send_to(UserName::new("bob")?, "hi bob").await?;
/// while let Some(event) = chat.next_event().await {
///     if let Event::Message(m) = event {
///         println!("[{}]: {}", m.sender, m.body);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Chat {
    transport: Box<dyn Transport>,
    clock: LamportClock,
    seen: MessageBuffer,
}

impl Chat {
    /// Wraps a connected transport.
    pub fn new(transport: impl Transport + 'static) -> Self {
        Chat::from_box(Box::new(transport))
    }

    /// Wraps a boxed transport (for code choosing the topology at run time).
    pub fn from_box(transport: Box<dyn Transport>) -> Self {
        Chat {
            transport,
            clock: LamportClock::new(NodeId::default()),
            seen: MessageBuffer::new(crate::buffer::DEFAULT_HISTORY),
        }
    }

    /// The local participant's name.
    pub fn name(&self) -> &UserName {
        self.transport.local_name()
    }

    /// The local node ID, in topologies that assign one (P2P).
    pub fn node_id(&self) -> Option<NodeId> {
        self.transport.local_node_id()
    }

    /// The local Lamport clock's counter.
    pub fn clock(&self) -> u64 {
        self.clock.counter()
    }

    /// Sends `body` to `recipients`.
    pub async fn send(&mut self, recipients: Recipients, body: impl Into<String>) -> Result<SendReceipt, CoreError> {
        let body = body.into();
        check_body(&body)?;
        let sent_at = self.clock.tick();
        self.transport.send(OutgoingMessage { recipients, body, sent_at }).await
    }

    /// Sends a private message to one user.
    pub async fn send_to(&mut self, user: UserName, body: impl Into<String>) -> Result<SendReceipt, CoreError> {
        self.send(Recipients::Unicast(user), body).await
    }

    /// Sends a message to a chosen list of users.
    pub async fn multicast(
        &mut self,
        users: impl IntoIterator<Item = UserName>,
        body: impl Into<String>,
    ) -> Result<SendReceipt, CoreError> {
        self.send(Recipients::multicast(users)?, body).await
    }

    /// Sends a message to everybody.
    pub async fn broadcast(&mut self, body: impl Into<String>) -> Result<SendReceipt, CoreError> {
        self.send(Recipients::Broadcast, body).await
    }

    /// Sends a message to the members of a room (this participant must be one).
    pub async fn send_to_room(&mut self, room: RoomName, body: impl Into<String>) -> Result<SendReceipt, CoreError> {
        self.send(Recipients::Room(room), body).await
    }

    /// Joins a room (creating it if new); returns its recent messages, oldest first.
    pub async fn join_room(&mut self, room: RoomName) -> Result<Vec<ChatMessage>, CoreError> {
        let messages = self.transport.join_room(room).await?;
        if let Some(newest) = messages.last() {
            self.observe(newest.lamport);
        }
        Ok(messages)
    }

    /// Leaves a room.
    pub async fn part_room(&mut self, room: RoomName) -> Result<(), CoreError> {
        self.transport.part_room(room).await
    }

    /// The rooms with members online.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, CoreError> {
        self.transport.rooms().await
    }

    /// Who is online in `room`, or everywhere.
    pub async fn who(&self, room: Option<RoomName>) -> Result<Vec<PeerInfo>, CoreError> {
        self.transport.who(room).await
    }

    /// The next event. Messages already delivered (same ID) are skipped. `None` once closed.
    /// Cancel-safe, like [`Transport::recv`].
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            let event = self.transport.recv().await?;
            if let Event::Message(m) = &event {
                if self.seen.insert(m.clone()) == Inserted::Duplicate {
                    continue;
                }
                self.observe(m.lamport);
            }
            return Some(event);
        }
    }

    /// Who is online.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, CoreError> {
        self.transport.peers().await
    }

    /// The last `limit` messages this participant may see, oldest first.
    pub async fn history(&mut self, limit: usize) -> Result<Vec<ChatMessage>, CoreError> {
        self.history_of(None, limit).await
    }

    /// The last `limit` messages of `room` (or of everything this participant may see), oldest first.
    pub async fn history_of(&mut self, room: Option<RoomName>, limit: usize) -> Result<Vec<ChatMessage>, CoreError> {
        let messages = self.transport.history(room, limit).await?;
        if let Some(newest) = messages.last() {
            self.observe(newest.lamport);
        }
        Ok(messages)
    }

    /// Leaves cleanly.
    pub async fn leave(&mut self) -> Result<(), CoreError> {
        self.transport.leave().await
    }

    fn observe(&mut self, remote: Timestamp) {
        self.clock.observe(remote);
    }
}
