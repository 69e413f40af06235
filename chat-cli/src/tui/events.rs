//! Chat events and request replies into the full-screen client's state.
//!
//! | in                                  | view                       | also                                        |
//! |-------------------------------------|----------------------------|---------------------------------------------|
//! | a room message                      | the room's                 | unread count if not shown                   |
//! | any other message                   | everyone                   | unread count if not shown                   |
//! | a message addressed to you or naming you (not yours) | as above  | highlighted, the bell, `!` in the side panel |
//! | `PeerJoined` / `PeerLeft`           | everyone: `* bob joined`   | the people of everyone (and of every room, on leaving) |
//! | `RoomJoined` / `RoomLeft`           | the room's                 | the room's people                           |
//! | `CoordinatorChanged` (P2P)          | everyone                   | the status bar                              |
//! | `Reconnecting` / `Resumed`          | everyone (first attempt, resume) | the status bar; on resume the people are asked again |
//! | `Notice`, `Error`                   | the current view           |                                             |
//! | `Disconnected`                      |                            | the ending: `Lost`                          |
//! | a reply                             | the current view (a join: the room's, which is shown) | see [`Reply`] |

use chat_core::{ChatMessage, ErrorCode, Event, MessageKind, PeerInfo, RoomInfo, RoomName, SendReceipt, UserName};

use super::state::{Link, Request, Ui};
use super::view::Entry;
use crate::session::Ending;

/// What the chat answered to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A send was stored.
    Sent(SendReceipt),
    /// Joined a room; its recent messages.
    Joined(RoomName, Vec<ChatMessage>),
    /// Left a room.
    Parted(RoomName),
    /// The rooms.
    Rooms(Vec<RoomInfo>),
    /// Who is in a room (or online), to show.
    Who(Option<RoomName>, Vec<PeerInfo>),
    /// Who is online, to show.
    Peers(Vec<PeerInfo>),
    /// Messages of history.
    History(Option<RoomName>, Vec<ChatMessage>),
    /// Who is in a room (or online), for the side panel.
    People(Option<RoomName>, Vec<PeerInfo>),
    /// The request failed; `closed`: the chat is over.
    Failed {
        /// Why.
        code: ErrorCode,
        /// The explanation.
        message: String,
        /// The connection is gone for good.
        closed: bool,
    },
}

/// Whether `body` names `me` as a word (ignoring case).
pub fn mentions(body: &str, me: &str) -> bool {
    let (body, me) = (body.to_lowercase(), me.to_lowercase());
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    body.match_indices(&me).any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + me.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

fn names(peers: &[PeerInfo]) -> Vec<&str> {
    peers.iter().map(|p| p.name.as_str()).collect()
}

impl Ui {
    /// The entry of a message, as this user sees it.
    pub(super) fn message_entry(&self, m: &ChatMessage) -> Entry {
        let me = &self.look.me;
        let is_me = |n: &UserName| n.as_str().to_lowercase() == me.to_lowercase();
        let mine = is_me(&m.sender);
        let (to, addressed) = match m.kind() {
            MessageKind::Broadcast | MessageKind::Room => (None, false),
            MessageKind::Unicast => {
                let to = &m.recipients.names()[0];
                (Some(if is_me(to) { "you".to_string() } else { to.to_string() }), is_me(to))
            }
            MessageKind::Multicast => {
                let list: Vec<&str> = m.recipients.names().iter().map(UserName::as_str).collect();
                (Some(format!("{{{}}}", list.join(", "))), m.recipients.names().iter().any(is_me))
            }
        };
        let mention = !mine && (addressed || mentions(&m.body, me));
        Entry::Message { time: m.time, sender: m.sender.to_string(), to, body: m.body.clone(), mention }
    }

    /// Handles one chat event.
    pub fn handle_event(&mut self, event: Event) {
        match event {
            Event::Message(m) => self.message(&m),
            Event::PeerJoined(p) => {
                self.views[0].arrive(p.name.as_str());
                self.views[0].push(Entry::Info(format!("{} joined", p.name)));
            }
            Event::PeerLeft(p) => {
                for view in &mut self.views {
                    view.depart(p.name.as_str());
                }
                self.views[0].push(Entry::Info(format!("{} left", p.name)));
            }
            Event::RoomJoined { room, peer } => {
                if let Some(i) = self.view_of(&room) {
                    self.views[i].arrive(peer.name.as_str());
                    self.views[i].push(Entry::Info(format!("{} joined {room}", peer.name)));
                }
            }
            Event::RoomLeft { room, peer } => {
                if let Some(i) = self.views.iter().position(|v| v.is(&room)) {
                    self.views[i].depart(peer.name.as_str());
                    self.views[i].push(Entry::Info(format!("{} left {room}", peer.name)));
                }
            }
            Event::CoordinatorChanged { name, node_id, epoch } => {
                self.coordinator = Some(format!("{name} (node {node_id})"));
                self.views[0].push(Entry::Info(format!("coordinator is now {name} (node {node_id}, epoch {epoch})")));
            }
            Event::Reconnecting { attempt, in_ms } => {
                self.link = Link::Reconnecting(attempt);
                if attempt == 1 {
                    let secs = in_ms as f64 / 1000.0;
                    self.views[0].push(Entry::Info(format!("connection lost; reconnecting in {secs:.1} s")));
                }
            }
            Event::Resumed { missed } => {
                self.link = Link::Resumed(missed);
                self.views[0].push(Entry::Info(format!("reconnected; {missed} message(s) you missed follow")));
                // Joins and leaves may have been missed: ask again.
                let rooms: Vec<Option<RoomName>> = self.views.iter().map(|v| v.room.clone()).collect();
                for room in rooms {
                    self.request(Request::Refresh(room));
                }
            }
            Event::Notice { text } => self.info(text),
            Event::Error { code, message } => self.error(code, &message),
            Event::Disconnected { code, reason } => {
                self.error(code, &reason);
                self.end(Ending::Lost(reason));
            }
        }
    }

    fn message(&mut self, m: &ChatMessage) {
        let entry = self.message_entry(m);
        let mention = matches!(entry, Entry::Message { mention: true, .. });
        let index = match m.recipients.room() {
            Some(room) => self.view_of(room).unwrap_or(0),
            None => 0,
        };
        let view = &mut self.views[index];
        view.push(entry);
        if index != self.current {
            view.unread += 1;
            view.mentions += usize::from(mention);
        }
        if mention {
            self.ring();
        }
    }

    /// Handles the reply to a request.
    pub fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Sent(receipt) => {
                if !receipt.unknown.is_empty() {
                    let list: Vec<&str> = receipt.unknown.iter().map(UserName::as_str).collect();
                    self.error(ErrorCode::UnknownUser, &format!("not delivered to {} (unknown here)", list.join(", ")));
                }
                for name in &receipt.queued {
                    self.info(format!("{name} is offline; they will get it when they return"));
                }
            }
            Reply::Joined(room, messages) => {
                let Some(index) = self.view_of(&room) else {
                    return self.error(ErrorCode::TooMany, "too many views: /part a room first");
                };
                self.add_history(index, &messages);
                self.switch_to(index);
                self.info(format!("you joined {room}: plain text now goes there (Ctrl-N/Ctrl-P to switch views)"));
                self.request(Request::Refresh(Some(room)));
            }
            Reply::Parted(room) => {
                if let Some(index) = self.views.iter().position(|v| v.is(&room)) {
                    self.views.remove(index);
                    if self.current == index {
                        self.switch_to(0);
                    } else if self.current > index {
                        self.current -= 1;
                    }
                }
                self.info(format!("you left {room}"));
            }
            Reply::Rooms(rooms) => {
                self.rooms_seen.extend(rooms.iter().map(|r| r.name.to_string()));
                if rooms.is_empty() {
                    self.info("no rooms yet: /join #name creates one".into());
                } else {
                    let list: Vec<String> = rooms.iter().map(|r| format!("{} ({})", r.name, r.members)).collect();
                    self.info(format!("rooms: {}", list.join(", ")));
                }
            }
            Reply::Who(room, peers) => {
                let place = room.as_ref().map_or("online".to_string(), |r| format!("in {r}"));
                self.info(format!("{place} ({}): {}", peers.len(), names(&peers).join(", ")));
                self.people(room, &peers);
            }
            Reply::Peers(peers) => {
                self.info(format!("online ({}): {}", peers.len(), names(&peers).join(", ")));
                self.people(None, &peers);
            }
            Reply::History(room, messages) => {
                let of = room.map(|r| format!(" of {r}")).unwrap_or_default();
                self.info(format!("history{of}: {} message(s)", messages.len()));
                self.add_history(self.current, &messages);
            }
            Reply::People(room, peers) => self.people(room, &peers),
            Reply::Failed { code, message, closed } => {
                self.error(code, &message);
                if closed {
                    self.end(Ending::Lost(message));
                }
            }
        }
    }

    fn people(&mut self, room: Option<RoomName>, peers: &[PeerInfo]) {
        let index = match &room {
            None => Some(0),
            Some(room) => self.views.iter().position(|v| v.is(room)),
        };
        if let Some(index) = index {
            self.views[index].set_people(names(peers));
        }
    }
}
