//! The node task's byte-moving helpers: one task per outgoing link, the accept loop and one reader
//! per inbound connection. They are generic over where streams come from ([`Listener`],
//! [`Dialer`]): TCP in programs, an in-memory network in tests.
//!
//! Links are one-way: a node only writes on connections it dialled and only reads on connections
//! others dialled. Every connection opens with the handshake (role `Peer`), then carries frames of
//! [`Envelope`]s.

use std::net::SocketAddr;
use std::time::Duration;

use chat_transport::{ByteStream, Dialer, FrameReader, FrameWriter, Listener, Role, TransportError, handshake};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{CONNECT_TIMEOUT, Inbound, MAX_INBOUND};
use crate::protocol::Envelope;

/// Most frames written in one batch by a link task.
const WRITE_BATCH: usize = 64;

/// Dials `addr`, writes what the driver queues, and reports the link down on any failure.
pub(super) async fn link_task<D: Dialer>(
    dialer: D,
    addr: SocketAddr,
    generation: u64,
    mut rx: mpsc::Receiver<Envelope>,
    inbound: mpsc::Sender<Inbound>,
) {
    let result: Result<(), TransportError> = async {
        let connect = async {
            let mut stream = dialer.connect(addr).await?;
            handshake(&mut stream, Role::Peer).await?;
            Ok::<_, TransportError>(stream)
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| TransportError::Io(std::io::ErrorKind::TimedOut.into()))??;
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
                        // The driver closed the link (leave): everything queued is written.
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
        let _ = inbound.send(Inbound::LinkDown { addr, generation }).await;
    }
}

/// Accepts peers' connections and starts a reader for each (at most [`MAX_INBOUND`]).
pub(super) async fn accept_loop<L: Listener>(mut listener: L, inbound: mpsc::Sender<Inbound>) {
    let mut readers = JoinSet::new();
    loop {
        while readers.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, from)) => {
                if readers.len() >= MAX_INBOUND {
                    debug!(%from, "too many connections: closing");
                    continue;
                }
                readers.spawn(read_peer(stream, inbound.clone()));
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads frames from one inbound connection until it ends.
async fn read_peer<S: ByteStream>(mut stream: S, inbound: mpsc::Sender<Inbound>) {
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake(&mut stream, Role::Peer)).await {
        Ok(Ok(Role::Peer)) => {}
        other => {
            debug!(result = ?other.map(|r| r.map_err(|e| e.to_string())), "inbound handshake failed");
            return;
        }
    }
    let mut reader: FrameReader<_, Envelope> = FrameReader::new(stream);
    loop {
        match reader.read_frame().await {
            Ok(Some(env)) => {
                if inbound.send(Inbound::Frame(env)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                debug!(error = %e, "inbound connection failed");
                return;
            }
        }
    }
}
