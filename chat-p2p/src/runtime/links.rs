//! The node task's byte-moving helpers: one task per outgoing link, the accept loop and one reader
//! per inbound connection. They are generic over where streams come from ([`Listener`],
//! [`Dialer`]): TCP in programs, an in-memory network in tests.
//!
//! Links are one-way: a node only writes on connections it dialled and only reads on connections
//! others dialled. Every connection opens with the hello and, in a group with a secret, the Noise
//! handshake (`opening.rs`), then carries frames of [`Envelope`]s; a reader hands each frame to the
//! driver with the key its link was authenticated with, and a link that could not be authenticated
//! is reported as such ([`Inbound::Untrusted`]).
//!
//! | side    | rule                                                                                     |
//! |---------|------------------------------------------------------------------------------------------|
//! | reader  | hello (and Noise) within [`CONNECT_TIMEOUT`]; then a frame at least every *idle timeout* ([`INBOUND_IDLE_TIMEOUTS`] failure timeouts), or closed |
//! | accept  | at most [`MAX_INBOUND_PER_IP`] per source IP and [`MAX_INBOUND`] in all; at a bound, the oldest connection that has not yet sent a frame makes room (`inbound.rs`) |
//! | writer  | a link that cannot be opened is reported `connected: false` (the node hears `Unreachable`), one that breaks after `connected: true` (`LinkDown`) |
//!
//! Live links are never silent that long: the coordinator heartbeats every member, every member
//! answers `Alive`, and a link nobody writes on (a member's link to a member that is not the
//! coordinator, used only during elections) is closed by its *writer* after one failure timeout
//! without frames (the driver's sweep), before the reader's idle timeout could cut it mid-frame.
//! Accepting never waits on a connection (the handshake is in the reader task), so the accept queue
//! drains as fast as connections come.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chat_transport::{ByteStream, Dialer, FrameReader, FrameWriter, Listener, TransportError};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use super::inbound::{Admit, InboundTable, MAX_INBOUND, MAX_INBOUND_PER_IP};
use super::opening::{OpenFailure, open};
use super::{CONNECT_TIMEOUT, INBOUND_IDLE_TIMEOUTS, Inbound};
use crate::node::{Channel, Untrusted};
use crate::protocol::{Envelope, PeerKey};
use crate::secure::Security;

/// Most frames a link task writes with one write (what the driver queued meanwhile).
pub const WRITE_BATCH: usize = 256;

/// Dials `addr`, writes what the driver queues, and reports the link down on any failure (whether
/// it was ever open). Ends quietly once the driver drops the queue, after writing what is in it.
///
/// With a group secret (`security`), the link must authenticate; if the node knows the key of the
/// member at `addr` (the second half), the other end must hold that key, or nothing is written and
/// the link is reported [`Untrusted::WrongKey`].
pub(super) async fn link_task<D: Dialer>(
    dialer: D,
    addr: SocketAddr,
    generation: u64,
    mut rx: mpsc::Receiver<Envelope>,
    inbound: mpsc::Sender<Inbound>,
    security: Option<(Arc<Security>, Option<PeerKey>)>,
) {
    let connect = async {
        let stream = dialer.connect(addr).await.map_err(|e| OpenFailure::Failed(e.to_string()))?;
        let (stream, key) = open(stream, security.as_ref().map(|(s, _)| s.as_ref()), true).await?;
        match security.as_ref().and_then(|(_, expected)| *expected) {
            Some(expected) if key != Some(expected) => Err(OpenFailure::Untrusted(Untrusted::WrongKey)),
            _ => Ok((stream, key)),
        }
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((stream, _))) => stream,
        other => {
            match other {
                Ok(Err(OpenFailure::Untrusted(what))) => {
                    info!(%addr, %what, "link refused: not authenticated");
                    let channel = Channel::Dialed(addr);
                    let _ = inbound.send(Inbound::Untrusted { what, channel }).await;
                }
                Ok(Err(OpenFailure::Failed(error))) => debug!(%addr, %error, "link could not be opened"),
                Ok(Ok(_)) | Err(_) => debug!(%addr, "link could not be opened: timed out"),
            }
            let _ = inbound.send(Inbound::LinkDown { addr, generation, connected: false }).await;
            return;
        }
    };
    let result: Result<(), TransportError> = async {
        let (mut read, write) = tokio::io::split(stream);
        let mut writer: FrameWriter<_, Envelope> = FrameWriter::new(write);
        let mut probe = [0u8; 64];
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(env) => {
                        writer.queue(&env)?;
                        for _ in 1..WRITE_BATCH {
                            match rx.try_recv() {
                                Ok(env) => writer.queue(&env)?,
                                Err(_) => break,
                            }
                        }
                        writer.flush().await?;
                    }
                    None => {
                        // The driver closed the link (leave, or idle): everything queued is written.
                        writer.shutdown().await?;
                        return Ok(());
                    }
                },
                // The peer never writes on this connection: end of stream or an error means it is gone.
                n = read.read(&mut probe) => {
                    if matches!(n, Ok(0) | Err(_)) {
                        return Err(TransportError::Io(std::io::ErrorKind::ConnectionReset.into()));
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        debug!(%addr, error = %e, "link down");
        let _ = inbound.send(Inbound::LinkDown { addr, generation, connected: true }).await;
    }
}

/// Accepts peers' connections and starts a reader for each, within the bounds of `inbound.rs`;
/// `idle` is the reader's idle timeout.
pub(super) async fn accept_loop<L: Listener>(
    mut listener: L,
    inbound: mpsc::Sender<Inbound>,
    idle: Duration,
    security: Option<Arc<Security>>,
) {
    let mut readers = JoinSet::new();
    let mut handles: HashMap<tokio::task::Id, AbortHandle> = HashMap::new();
    let mut table = InboundTable::new(MAX_INBOUND_PER_IP, MAX_INBOUND);
    loop {
        tokio::select! {
            Some(done) = readers.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                table.remove(&id);
                handles.remove(&id);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    match table.admit(from.ip()) {
                        Admit::Accept => {}
                        Admit::Evict(victim) => {
                            debug!(%from, "inbound connections at their bound: closing the oldest silent one");
                            if let Some(handle) = handles.remove(&victim) {
                                handle.abort();
                            }
                        }
                        Admit::Refuse => {
                            debug!(%from, held = table.len(), "inbound connections at their bound: refusing");
                            continue;
                        }
                    }
                    let proven = Arc::new(AtomicBool::new(false));
                    let reader =
                        readers.spawn(read_peer(stream, inbound.clone(), idle, Arc::clone(&proven), security.clone()));
                    table.insert(reader.id(), from.ip(), proven);
                    handles.insert(reader.id(), reader);
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Reads frames from one inbound connection until it ends, fails, or stays silent for `idle`
/// (the first frame included). `proven` is set at the first frame.
async fn read_peer<S: ByteStream>(
    stream: S,
    inbound: mpsc::Sender<Inbound>,
    idle: Duration,
    proven: Arc<AtomicBool>,
    security: Option<Arc<Security>>,
) {
    let (stream, key) = match tokio::time::timeout(CONNECT_TIMEOUT, open(stream, security.as_deref(), false)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(OpenFailure::Untrusted(what))) => {
            debug!(%what, "inbound connection refused: not authenticated");
            let _ = inbound.send(Inbound::Untrusted { what, channel: Channel::Accepted }).await;
            return;
        }
        Ok(Err(OpenFailure::Failed(error))) => {
            debug!(%error, "inbound handshake failed");
            return;
        }
        Err(_) => {
            debug!("inbound handshake timed out");
            return;
        }
    };
    let mut reader: FrameReader<_, Envelope> = FrameReader::new(stream);
    loop {
        match tokio::time::timeout(idle, reader.read_frame()).await {
            Ok(Ok(Some(env))) => {
                proven.store(true, Ordering::Release);
                if inbound.send(Inbound::Frame { key, env }).await.is_err() {
                    return;
                }
            }
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                debug!(error = %e, "inbound connection failed");
                return;
            }
            Err(_) => {
                debug!(?idle, times = INBOUND_IDLE_TIMEOUTS, "inbound connection silent: closing");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PeerMsg;
    use crate::secure::GroupSecret;
    use chat_transport::memory::MemoryNetwork;

    /// A node with the group's secret dials a member's address, where `answering` accepts; the node
    /// expects the member's key `expected`. What the node reported, and what `answering` read.
    async fn dial(expected: PeerKey, answering: Security) -> (Vec<Inbound>, Option<Envelope>) {
        let net = MemoryNetwork::new();
        let at = SocketAddr::from(([127, 0, 0, 1], 7000));
        let mut listener = net.bind(at).expect("bound");
        let answering = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.ok()?;
            let (stream, _) = open(stream, Some(&answering), false).await.ok()?;
            FrameReader::<_, Envelope>::new(stream).read_frame().await.ok().flatten()
        });
        let secret = GroupSecret::from_bytes([5; 32]);
        let (queue, rx) = mpsc::channel(4);
        let (inbound_tx, mut inbound) = mpsc::channel(4);
        queue.send(Envelope { from: None, addr: at, msg: PeerMsg::Leave }).await.expect("queued");
        drop(queue);
        let me = Arc::new(Security::new(&secret));
        let dialer = net.dialer(SocketAddr::from(([127, 0, 0, 1], 7001)));
        link_task(dialer, at, 1, rx, inbound_tx, Some((me, Some(expected)))).await;
        let mut reported = Vec::new();
        while let Ok(item) = inbound.try_recv() {
            reported.push(item);
        }
        (reported, answering.await.expect("no panic"))
    }

    #[tokio::test]
    async fn a_link_to_a_members_address_answered_by_another_key_carries_nothing() {
        let secret = GroupSecret::from_bytes([5; 32]);
        let (member, impostor) = (Security::new(&secret), Security::new(&secret));
        let (reported, read) = dial(member.key, impostor).await;
        assert_eq!(read, None, "the impostor read a frame");
        assert!(
            matches!(
                reported.as_slice(),
                [
                    Inbound::Untrusted { what: Untrusted::WrongKey, channel: Channel::Dialed(_) },
                    Inbound::LinkDown { connected: false, .. }
                ]
            ),
            "reported {} items",
            reported.len()
        );
        // The member itself gets the frame.
        let key = member.key;
        let (reported, read) = dial(key, member).await;
        assert!(read.is_some_and(|env| env.msg == PeerMsg::Leave));
        assert!(reported.is_empty(), "a clean end after the queue closed");
    }
}
