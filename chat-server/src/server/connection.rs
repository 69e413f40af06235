//! One connection's shell: the handshake, its writer task, and the reader loop that hands frames to
//! the owner. Generic over the stream, so TCP, in-memory pipes and (later) TLS run the same code.

use std::sync::Arc;
use std::time::Duration;

use chat_core::ErrorCode;
use chat_transport::{ByteStream, FrameReader, Role, TransportError, encode_frame, handshake_accepting};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::ConnSettings;
use super::gate::{Gate, LINGER};
use crate::ServerError;
use crate::fanout::private_queue::{PrivateQueue, PrivateSender, WriterProgress};
use crate::fanout::stream::StreamReader;
use crate::fanout::writer::write_loop;
use crate::protocol::{ClientFrame, SUPPORTED_VERSIONS, ServerFrame, v1};
use crate::router::ConnId;
use crate::tls::{Prefixed, TLS_HANDSHAKE_BYTE};

/// Time allowed for the protocol handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What connection tasks tell the owner task.
pub(super) enum Inbound {
    /// A connection completed its handshake.
    Open { conn: ConnId, entry: ConnEntry },
    /// A frame it read.
    Frame { conn: ConnId, frame: ClientFrame },
    /// It ended (`quit`, `disconnected`, `timeout`).
    Closed { conn: ConnId, reason: String },
    /// Its credential was checked: the registered name it proves, or none.
    Authenticated { conn: ConnId, name: Option<chat_core::UserName> },
}

/// The owner task's handle on one connection.
pub(super) struct ConnEntry {
    /// Its private queue (dropping it closes the connection once the queue is written).
    pub(super) private: PrivateSender,
    /// How far its writer got.
    pub(super) progress: Arc<WriterProgress>,
    /// Disconnects it at once with a last `Closing` frame.
    pub(super) kill: Option<oneshot::Sender<(ErrorCode, String)>>,
    /// Its reader task.
    pub(super) reader: AbortHandle,
    /// Whether it speaks protocol version 1 (its frames are converted).
    pub(super) legacy: bool,
    /// Whether its client can resume a session (not the text protocol's).
    pub(super) resumable: bool,
    /// Its reader's gate (pausing, read-ahead), if its reader has one (the binary protocol's).
    pub(super) gate: Option<Arc<Gate>>,
}

/// Answers a connection the router refused with `Refused { code, message }` after the handshake,
/// then closes it.
pub(super) async fn refuse<S: ByteStream>(mut stream: S, code: ErrorCode, message: String) {
    let refuse = async {
        // `Refused` is encoded the same in every version.
        handshake_accepting(&mut stream, Role::Server, SUPPORTED_VERSIONS).await?;
        let frame = encode_frame(&ServerFrame::Refused { code, message })?;
        stream.write_all(&frame).await?;
        Ok::<(), TransportError>(())
    };
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, refuse).await;
}

/// Serves a connection that must speak TLS: a TLS handshake first (its first byte says so); a client
/// that speaks plaintext instead is told, in a frame it can read, to use TLS.
pub(super) async fn serve_tls<S: ByteStream>(
    conn: ConnId,
    mut stream: S,
    tls: TlsAcceptor,
    inbound: mpsc::Sender<Inbound>,
    settings: ConnSettings,
    tracker: TaskTracker,
    stream_reader: StreamReader,
) -> Result<(), ServerError> {
    let mut first = [0u8; 1];
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut first)).await;
    if !matches!(read, Ok(Ok(_))) {
        let _ = inbound.send(Inbound::Closed { conn, reason: "handshake failed".into() }).await;
        return Ok(());
    }
    let stream = Prefixed::new(first[0], stream);
    if first[0] != TLS_HANDSHAKE_BYTE {
        let _ = inbound.send(Inbound::Closed { conn, reason: "plaintext on a TLS port".into() }).await;
        let message = "this server requires TLS: connect with --tls".to_string();
        refuse(stream, ErrorCode::Protocol, message).await;
        return Ok(());
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(conn, stream, inbound, settings, tracker, stream_reader).await,
        other => {
            let _ = inbound.send(Inbound::Closed { conn, reason: "TLS handshake failed".into() }).await;
            let reason = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_string(),
            };
            Err(ServerError::Tls(format!("TLS handshake failed: {reason}")))
        }
    }
}

/// Handshake, then register with the owner and run the reader loop (the writer is its own task).
pub(super) async fn serve_connection<S: ByteStream>(
    conn: ConnId,
    mut stream: S,
    inbound: mpsc::Sender<Inbound>,
    settings: ConnSettings,
    tracker: TaskTracker,
    stream_reader: StreamReader,
) -> Result<(), ServerError> {
    let shaken =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake_accepting(&mut stream, Role::Server, SUPPORTED_VERSIONS))
            .await
            .map_err(|_| ServerError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out")))
            .and_then(|r| r.map_err(ServerError::from));
    let legacy = match shaken {
        Ok((_, version)) => version == v1::VERSION,
        Err(e) => {
            // The router counted this connection since it was accepted: tell it it is gone.
            let _ = inbound.send(Inbound::Closed { conn, reason: "handshake failed".into() }).await;
            return Err(e);
        }
    };
    let (read, write) = tokio::io::split(stream);
    let (private, rx) = PrivateQueue::new(settings.outbox);
    let (kill_tx, kill_rx) = oneshot::channel();
    let progress = WriterProgress::new();
    tracker.spawn(write_loop(write, rx, stream_reader, kill_rx, progress.clone(), settings.heartbeat));
    let idle = settings.heartbeat * 3;
    // Paused until the owner knows the connection, so no frame of it arrives before its `Open`.
    let gate = Gate::paused();
    let reader = if legacy {
        tokio::spawn(read_loop::<_, v1::ClientFrame>(conn, read, inbound.clone(), idle, gate.clone()))
    } else {
        tokio::spawn(read_loop::<_, ClientFrame>(conn, read, inbound.clone(), idle, gate.clone()))
    };
    let reader_handle = reader.abort_handle();
    let entry = ConnEntry {
        private,
        progress,
        kill: Some(kill_tx),
        reader: reader_handle,
        legacy,
        resumable: true,
        gate: Some(gate.clone()),
    };
    if inbound.send(Inbound::Open { conn, entry }).await.is_err() {
        reader.abort();
    }
    gate.resume();
    let _ = reader.await;
    Ok(())
}

/// Reads frames of type `F` (this version's, or version 1's, converted) until the connection ends,
/// each only once its [`Gate`] allows (not while paused; at most [`MAX_READ_AHEAD`](super::gate::MAX_READ_AHEAD)
/// frames ahead of the owner). The silence timeout counts only time spent reading.
async fn read_loop<R, F>(conn: ConnId, read: R, inbound: mpsc::Sender<Inbound>, idle: Duration, gate: Arc<Gate>)
where
    R: AsyncRead + Unpin,
    F: serde::de::DeserializeOwned + Into<ClientFrame>,
{
    let mut reader: FrameReader<_, F> = FrameReader::new(read);
    let reason = loop {
        tokio::select! {
            biased;
            () = gate.lingering() => return linger(&mut reader).await,
            () = gate.ready() => {}
        }
        let read = tokio::select! {
            biased;
            () = gate.lingering() => return linger(&mut reader).await,
            read = tokio::time::timeout(idle, reader.read_frame()) => read,
        };
        match read {
            Err(_) => break "timeout".to_string(),
            Ok(Ok(Some(frame))) => {
                let frame = frame.into();
                if frame == ClientFrame::Leave {
                    break crate::router::QUIT.to_string();
                }
                if matches!(frame, ClientFrame::Pong) {
                    gate.applied(); // nothing for the owner to do
                    continue;
                }
                tokio::select! {
                    biased;
                    () = gate.lingering() => return linger(&mut reader).await,
                    sent = inbound.send(Inbound::Frame { conn, frame }) => if sent.is_err() { return },
                }
            }
            Ok(Ok(None)) => break "disconnected".to_string(),
            Ok(Err(e)) => {
                debug!(conn, error = %e, "read failed");
                break "disconnected".to_string();
            }
        }
    };
    let _ = inbound.send(Inbound::Closed { conn, reason }).await;
}

/// Discards what the client still sends, until it closes or [`LINGER`] has passed (see `gate`).
async fn linger<R: AsyncRead + Unpin, F: serde::de::DeserializeOwned>(reader: &mut FrameReader<R, F>) {
    let _ = tokio::time::timeout(LINGER, async { while let Ok(Some(_)) = reader.read_frame().await {} }).await;
}
