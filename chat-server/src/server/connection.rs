//! One connection's shell: the handshake, its writer task, and the reader loop that hands frames to
//! the owner. Generic over the stream, so TCP, in-memory pipes and (later) TLS run the same code.

use std::sync::Arc;
use std::time::Duration;

use chat_core::ErrorCode;
use chat_transport::{ByteStream, FrameReader, Role, TransportError, encode_frame, handshake_accepting};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::error::TrySendError;
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

/// Handshake, then start the connection's reader and writer tasks and register them with the owner.
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
    let idle = settings.heartbeat * 3;
    // Paused until the owner knows the connection, so no frame of it arrives before its `Open`.
    let gate = Gate::paused();
    // Tracked, so that shutdown waits for a reader's linger as for a writer's flush.
    let reader = if legacy {
        tracker.spawn(read_loop::<_, v1::ClientFrame>(conn, read, inbound.clone(), idle, gate.clone()))
    } else {
        tracker.spawn(read_loop::<_, ClientFrame>(conn, read, inbound.clone(), idle, gate.clone()))
    };
    tracker.spawn(write_loop(write, rx, stream_reader, kill_rx, progress.clone(), settings.heartbeat));
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
    // This task ends here: from `Open` on the owner controls the connection through its entry (the
    // reader's abort handle, the writer's kill switch), so nothing waits for the reader (one task
    // less per connection held: about a kilobyte of an idle connection's memory).
    Ok(())
}

/// Reads frames of type `F` (this version's, or version 1's, converted) until the connection ends,
/// each only once its [`Gate`] allows (not while paused; at most [`MAX_READ_AHEAD`](super::gate::MAX_READ_AHEAD)
/// frames ahead of the owner). The silence timeout counts only time spent reading.
///
/// Its future is the task's memory for as long as the connection lives, idle or not, so the rare
/// paths (lingering, waiting for room in the owner's queue, the last report) are boxed: their state
/// is allocated only when they run.
///
/// (A plain function returning an `async move` block: an `async fn` would keep a second copy of its
/// arguments in its state.)
#[allow(clippy::manual_async_fn)] // on purpose: see the note above
fn read_loop<R, F>(
    conn: ConnId,
    read: R,
    inbound: mpsc::Sender<Inbound>,
    idle: Duration,
    gate: Arc<Gate>,
) -> impl Future<Output = ()>
where
    R: AsyncRead + Unpin,
    F: serde::de::DeserializeOwned + Into<ClientFrame>,
{
    async move {
        let mut reader: FrameReader<_, F> = FrameReader::new(read);
        // No frame or step is held across an `.await` of this loop but the next one: the rare awaits
        // come after it, so the future's layout needs room for the wait for the next frame only.
        let end = loop {
            let frame: ClientFrame = match next_step(conn, &mut reader, &gate, idle).await {
                Step::Frame(frame) => frame.into(),
                Step::Linger => break End::Linger,
                Step::End(reason) => break End::Report(reason),
            };
            if frame == ClientFrame::Leave {
                break End::Report(crate::router::QUIT.to_string());
            }
            if matches!(frame, ClientFrame::Pong) {
                gate.applied(); // nothing for the owner to do
                continue;
            }
            if gate.is_lingering() {
                break End::Linger;
            }
            // The owner's queue has room almost always; waiting for room is the boxed path.
            let full = match inbound.try_send(Inbound::Frame { conn, frame }) {
                Ok(()) => continue,
                Err(TrySendError::Full(frame)) => frame,
                Err(TrySendError::Closed(_)) => break End::Quiet,
            };
            if !Box::pin(send_or_linger(&mut reader, &inbound, full, &gate)).await {
                break End::Quiet;
            }
        };
        match end {
            End::Linger => Box::pin(linger(&mut reader)).await,
            End::Report(reason) => {
                let _ = Box::pin(inbound.send(Inbound::Closed { conn, reason })).await;
            }
            End::Quiet => {}
        }
    }
}

/// How a reader ends.
enum End {
    /// The owner closed the connection: discard what the client still sends for a while.
    Linger,
    /// The connection ended (the client left, closed, fell silent): tell the owner why.
    Report(String),
    /// Nothing more to do (the owner is gone, or the reader lingered already).
    Quiet,
}

/// What the reader does next.
enum Step<F> {
    /// Hand this frame over.
    Frame(F),
    /// The owner closed the connection: linger.
    Linger,
    /// The connection ended, for this reason.
    End(String),
}

/// Waits for the gate, then for the next frame (within `idle`), unless told to linger first. (Not an
/// `async fn`, for the reason given at [`read_loop`].)
#[allow(clippy::manual_async_fn)] // on purpose: see the note above
fn next_step<'a, R, F>(
    conn: ConnId,
    reader: &'a mut FrameReader<R, F>,
    gate: &'a Gate,
    idle: Duration,
) -> impl Future<Output = Step<F>> + 'a
where
    R: AsyncRead + Unpin,
    F: serde::de::DeserializeOwned,
{
    async move {
        tokio::select! {
            biased;
            () = gate.lingering() => return Step::Linger,
            () = gate.ready() => {}
        }
        let read = tokio::select! {
            biased;
            () = gate.lingering() => return Step::Linger,
            read = tokio::time::timeout(idle, reader.read_frame()) => read,
        };
        match read {
            Err(_) => Step::End("timeout".to_string()),
            Ok(Ok(Some(frame))) => Step::Frame(frame),
            Ok(Ok(None)) => Step::End("disconnected".to_string()),
            Ok(Err(e)) => {
                debug!(conn, error = %e, "read failed");
                Step::End("disconnected".to_string())
            }
        }
    }
}

/// Waits for room in the owner's queue for `frame`, unless the connection is told to linger first
/// (then lingers). Whether the reader goes on.
async fn send_or_linger<R: AsyncRead + Unpin, F: serde::de::DeserializeOwned>(
    reader: &mut FrameReader<R, F>,
    inbound: &mpsc::Sender<Inbound>,
    frame: Inbound,
    gate: &Gate,
) -> bool {
    tokio::select! {
        biased;
        () = gate.lingering() => {
            linger(reader).await;
            false
        }
        sent = inbound.send(frame) => sent.is_ok(),
    }
}

/// Discards what the client still sends, until it closes or [`LINGER`] has passed (see `gate`).
async fn linger<R: AsyncRead + Unpin, F: serde::de::DeserializeOwned>(reader: &mut FrameReader<R, F>) {
    let _ = tokio::time::timeout(LINGER, async { while let Ok(Some(_)) = reader.read_frame().await {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Most bytes of a reader's future (see [`read_loop`]): with tokio's task header it makes a 640-byte
    /// task, one per connection for its whole life. `RUSTFLAGS=-Zprint-type-sizes cargo +nightly build`
    /// shows the layout when this grows.
    const MAX_READER_FUTURE: usize = 528;

    #[test]
    fn a_readers_future_stays_small() {
        let (read, _write) = tokio::io::split(tokio::io::empty());
        let (inbound, _rx) = mpsc::channel(1);
        let reader = read_loop::<_, ClientFrame>(1, read, inbound, Duration::from_secs(15), Gate::paused());
        let size = std::mem::size_of_val(&reader);
        assert!(size <= MAX_READER_FUTURE, "a reader's future is {size} bytes, over {MAX_READER_FUTURE}");
    }
}
