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
use crate::node::Channel;
use crate::protocol::Envelope;
use crate::secure::Security;

/// Most frames written in one batch by a link task.
const WRITE_BATCH: usize = 64;

/// Dials `addr`, writes what the driver queues, and reports the link down on any failure (whether
/// it was ever open). Ends quietly once the driver drops the queue, after writing what is in it.
pub(super) async fn link_task<D: Dialer>(
    dialer: D,
    addr: SocketAddr,
    generation: u64,
    mut rx: mpsc::Receiver<Envelope>,
    inbound: mpsc::Sender<Inbound>,
    security: Option<Arc<Security>>,
) {
    let connect = async {
        let stream = dialer.connect(addr).await.map_err(|e| OpenFailure::Failed(e.to_string()))?;
        open(stream, security.as_deref(), true).await
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
