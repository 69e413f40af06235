//! In-memory network for tests of topology logic: no sockets, same codec.
//!
//! A [`MemoryNetwork`] connects named [`MemoryEndpoint`]s. Every frame is encoded with the codec's
//! payload encoding on send and decoded on receipt, so tests exercise serialization exactly as
//! TCP would. Each endpoint has one bounded inbox; a full inbox refuses the frame (`try_send`), it
//! never blocks the sender nor grows.
//!
//! | call                 | effect                                                              |
//! |----------------------|---------------------------------------------------------------------|
//! | `cut(a, b)`          | frames between `a` and `b` (both ways) are refused from now on      |
//! | `isolate(a)`         | frames to or from `a` are refused, whatever the peer                |
//! | `heal()`             | undoes every cut and isolation                                       |
//!
//! A refused send fails with an I/O error, as a broken TCP connection would: `NotConnected` for a
//! cut link, `ConnectionRefused` for an unknown or dropped endpoint, `WouldBlock` for a full inbox.
//! Frames already in an inbox when a link is cut are still delivered (they "left the wire").

use std::collections::{HashMap, HashSet};
use std::io;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::TransportError;
use crate::codec::{decode_payload, encode_payload};

/// Default inbox capacity of an endpoint, in frames.
pub const DEFAULT_INBOX: usize = 1024;

type Inbox = mpsc::Sender<(String, Vec<u8>)>;

#[derive(Debug, Default)]
struct Links {
    inboxes: HashMap<String, (u64, Inbox)>,
    generation: u64,
    cut: HashSet<(String, String)>,
    isolated: HashSet<String>,
}

impl Links {
    fn blocked(&self, a: &str, b: &str) -> bool {
        self.isolated.contains(a) || self.isolated.contains(b) || self.cut.contains(&pair(a, b))
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
}

/// A network of named endpoints exchanging frames of type `T`. Cloning shares the network.
#[derive(Debug)]
pub struct MemoryNetwork<T> {
    links: Arc<Mutex<Links>>,
    inbox: usize,
    _frames: PhantomData<fn(T) -> T>,
}

impl<T> Clone for MemoryNetwork<T> {
    fn clone(&self) -> Self {
        MemoryNetwork { links: Arc::clone(&self.links), inbox: self.inbox, _frames: PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> Default for MemoryNetwork<T> {
    fn default() -> Self {
        Self::new(DEFAULT_INBOX)
    }
}

impl<T: Serialize + DeserializeOwned> MemoryNetwork<T> {
    /// An empty network whose endpoints hold at most `inbox` frames each.
    pub fn new(inbox: usize) -> Self {
        MemoryNetwork { links: Arc::default(), inbox: inbox.max(1), _frames: PhantomData }
    }

    fn lock(&self) -> MutexGuard<'_, Links> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the endpoint `name`, replacing (and disconnecting) any previous one of that name.
    pub fn endpoint(&self, name: impl Into<String>) -> MemoryEndpoint<T> {
        let name = name.into();
        let (tx, rx) = mpsc::channel(self.inbox);
        let mut links = self.lock();
        links.generation += 1;
        let generation = links.generation;
        links.inboxes.insert(name.clone(), (generation, tx));
        drop(links);
        MemoryEndpoint { name, generation, net: self.clone(), rx }
    }

    /// Refuses frames between `a` and `b`, both ways.
    pub fn cut(&self, a: &str, b: &str) {
        self.lock().cut.insert(pair(a, b));
    }

    /// Refuses frames to and from `a`.
    pub fn isolate(&self, a: &str) {
        self.lock().isolated.insert(a.to_owned());
    }

    /// Undoes every cut and isolation.
    pub fn heal(&self) {
        let mut links = self.lock();
        links.cut.clear();
        links.isolated.clear();
    }

    /// Whether frames may currently flow between `a` and `b`.
    pub fn connected(&self, a: &str, b: &str) -> bool {
        !self.lock().blocked(a, b)
    }

    fn deliver(&self, from: &str, to: &str, payload: Vec<u8>) -> Result<(), TransportError> {
        let links = self.lock();
        if links.blocked(from, to) {
            return Err(io::Error::new(io::ErrorKind::NotConnected, format!("link {from} - {to} is cut")).into());
        }
        let (_, inbox) = links
            .inboxes
            .get(to)
            .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionRefused, format!("no endpoint {to}")))?;
        inbox.try_send((from.to_owned(), payload)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => io::Error::new(io::ErrorKind::WouldBlock, format!("{to} is full")),
            mpsc::error::TrySendError::Closed(_) => {
                io::Error::new(io::ErrorKind::ConnectionRefused, format!("{to} was dropped"))
            }
        })?;
        Ok(())
    }
}

/// One named endpoint of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryEndpoint<T> {
    name: String,
    generation: u64,
    net: MemoryNetwork<T>,
    rx: mpsc::Receiver<(String, Vec<u8>)>,
}

impl<T: Serialize + DeserializeOwned> MemoryEndpoint<T> {
    /// This endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Encodes `frame` and puts it in `to`'s inbox; never blocks.
    pub fn send(&self, to: &str, frame: &T) -> Result<(), TransportError> {
        let payload = encode_payload(frame)?;
        self.net.deliver(&self.name, to, payload)
    }

    /// The next frame and its sender's name; `None` once the network is gone.
    ///
    /// **Cancel-safe**: frames wait in the inbox until taken. A frame that does not decode is an
    /// error (the next call goes on with the following frame).
    pub async fn recv(&mut self) -> Option<Result<(String, T), TransportError>> {
        let (from, payload) = self.rx.recv().await?;
        Some(decode_payload(&payload).map(|frame| (from, frame)))
    }

    /// The next frame if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<(String, T), TransportError>> {
        let (from, payload) = self.rx.try_recv().ok()?;
        Some(decode_payload(&payload).map(|frame| (from, frame)))
    }
}

impl<T> Drop for MemoryEndpoint<T> {
    fn drop(&mut self) {
        let mut links = self.net.links.lock().unwrap_or_else(|e| e.into_inner());
        // Only remove our own inbox, not a newer endpoint that took the same name.
        if links.inboxes.get(&self.name).is_some_and(|(generation, _)| *generation == self.generation) {
            links.inboxes.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Frame {
        Ping(u32),
        Text(String),
    }

    fn kind(err: TransportError) -> io::ErrorKind {
        match err {
            TransportError::Io(e) => e.kind(),
            other => panic!("expected an i/o error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_arrive_in_order_with_their_sender() {
        let net = MemoryNetwork::<Frame>::default();
        let a = net.endpoint("a");
        let mut b = net.endpoint("b");
        for i in 0..5 {
            a.send("b", &Frame::Ping(i)).unwrap();
        }
        a.send("b", &Frame::Text("bye".into())).unwrap();
        for i in 0..5 {
            assert_eq!(b.recv().await.unwrap().unwrap(), ("a".to_owned(), Frame::Ping(i)));
        }
        assert_eq!(b.recv().await.unwrap().unwrap(), ("a".to_owned(), Frame::Text("bye".into())));
        assert!(b.try_recv().is_none());
    }

    #[test]
    fn cut_isolate_and_heal() {
        let net = MemoryNetwork::<Frame>::new(8);
        let a = net.endpoint("a");
        let b = net.endpoint("b");
        let mut c = net.endpoint("c");
        net.cut("b", "a");
        assert_eq!(kind(a.send("b", &Frame::Ping(1)).unwrap_err()), io::ErrorKind::NotConnected);
        assert_eq!(kind(b.send("a", &Frame::Ping(1)).unwrap_err()), io::ErrorKind::NotConnected);
        a.send("c", &Frame::Ping(2)).unwrap();
        net.isolate("c");
        assert!(!net.connected("a", "c"));
        assert_eq!(kind(b.send("c", &Frame::Ping(3)).unwrap_err()), io::ErrorKind::NotConnected);
        // The frame sent before the isolation is still delivered.
        assert_eq!(c.try_recv().unwrap().unwrap(), ("a".to_owned(), Frame::Ping(2)));
        net.heal();
        assert!(net.connected("a", "b") && net.connected("b", "c"));
        b.send("c", &Frame::Ping(4)).unwrap();
        assert_eq!(c.try_recv().unwrap().unwrap(), ("b".to_owned(), Frame::Ping(4)));
    }

    #[test]
    fn full_inbox_and_unknown_endpoint_refuse() {
        let net = MemoryNetwork::<Frame>::new(2);
        let a = net.endpoint("a");
        let _b = net.endpoint("b");
        a.send("b", &Frame::Ping(1)).unwrap();
        a.send("b", &Frame::Ping(2)).unwrap();
        assert_eq!(kind(a.send("b", &Frame::Ping(3)).unwrap_err()), io::ErrorKind::WouldBlock);
        assert_eq!(kind(a.send("nobody", &Frame::Ping(1)).unwrap_err()), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn dropped_endpoint_is_gone_and_a_new_one_takes_its_name() {
        let net = MemoryNetwork::<Frame>::new(4);
        let a = net.endpoint("a");
        let b = net.endpoint("b");
        drop(b);
        assert_eq!(kind(a.send("b", &Frame::Ping(1)).unwrap_err()), io::ErrorKind::ConnectionRefused);
        let mut b2 = net.endpoint("b");
        a.send("b", &Frame::Ping(2)).unwrap();
        assert_eq!(b2.try_recv().unwrap().unwrap().1, Frame::Ping(2));
    }

    #[test]
    fn frames_really_go_through_the_codec() {
        // A frame type whose decoding rejects what was encoded proves the bytes are decoded.
        #[derive(Debug, Serialize, Deserialize)]
        struct Named {
            name: String,
        }
        let net = MemoryNetwork::<Named>::new(4);
        let a = net.endpoint("a");
        let mut b = net.endpoint("b");
        a.send("b", &Named { name: "x".repeat(10) }).unwrap();
        assert_eq!(b.try_recv().unwrap().unwrap().1.name.len(), 10);
        let huge = Named { name: "x".repeat(crate::MAX_FRAME_LEN + 1) };
        assert!(matches!(
            a.send("b", &huge),
            Err(TransportError::FrameTooLarge { .. }) | Err(TransportError::Encode(_))
        ));
    }
}
