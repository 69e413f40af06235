//! Framed connections over any byte stream (TCP, `tokio::io::duplex`, simulated sockets).
//!
//! [`FrameReader`] yields decoded frames; [`FrameWriter`] buffers frames and writes them with as
//! few syscalls as possible. [`Connection`] pairs them for code that owns the whole stream.

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_stream_shim::next_frame;
use tokio_util::codec::{Encoder, FramedRead};

use crate::TransportError;
use crate::codec::FrameCodec;

/// Initial read buffer per connection: small, so idle connections cost little; it grows on demand.
pub const INITIAL_READ_BUFFER: usize = 256;

/// Reads frames of type `In` from `R`.
#[derive(Debug)]
pub struct FrameReader<R, In> {
    framed: FramedRead<R, FrameCodec<In, ()>>,
}

impl<R: AsyncRead + Unpin, In: DeserializeOwned> FrameReader<R, In> {
    /// Wraps a reader.
    pub fn new(io: R) -> Self {
        FrameReader { framed: FramedRead::with_capacity(io, FrameCodec::new(), INITIAL_READ_BUFFER) }
    }

    /// The next frame; `Ok(None)` on a clean end of stream (between frames).
    ///
    /// **Cancel-safe**: bytes already read stay in the internal buffer.
    pub async fn read_frame(&mut self) -> Result<Option<In>, TransportError> {
        next_frame(&mut self.framed).await
    }
}

/// Writes frames of type `Out` to `W`, batching them in a buffer until [`FrameWriter::flush`].
#[derive(Debug)]
pub struct FrameWriter<W, Out> {
    io: W,
    buf: BytesMut,
    codec: FrameCodec<(), Out>,
}

impl<W: AsyncWrite + Unpin, Out: Serialize> FrameWriter<W, Out> {
    /// Wraps a writer.
    pub fn new(io: W) -> Self {
        FrameWriter { io, buf: BytesMut::new(), codec: FrameCodec::new() }
    }

    /// Adds a frame to the buffer (nothing is written yet).
    pub fn queue(&mut self, frame: &Out) -> Result<(), TransportError> {
        self.codec.encode(frame, &mut self.buf)
    }

    /// Adds a pre-encoded frame (see [`crate::encode_frame`]) to the buffer.
    pub fn queue_encoded(&mut self, frame: &Bytes) {
        self.buf.extend_from_slice(frame);
    }

    /// Bytes buffered and not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything buffered, in as few syscalls as the OS allows.
    ///
    /// Not cancel-safe: if cancelled, part of the buffer may have been written.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Queues one frame and flushes.
    pub async fn write_frame(&mut self, frame: &Out) -> Result<(), TransportError> {
        self.queue(frame)?;
        self.flush().await
    }

    /// Flushes and shuts down the write direction (the peer reads end of stream).
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// A whole framed stream: reads `In`, writes `Out`.
#[derive(Debug)]
pub struct Connection<S, In, Out> {
    reader: FrameReader<tokio::io::ReadHalf<S>, In>,
    writer: FrameWriter<tokio::io::WriteHalf<S>, Out>,
}

impl<S, In, Out> Connection<S, In, Out>
where
    S: AsyncRead + AsyncWrite,
    In: DeserializeOwned,
    Out: Serialize,
{
    /// Wraps a stream (after the handshake).
    pub fn new(stream: S) -> Self {
        let (r, w) = tokio::io::split(stream);
        Connection { reader: FrameReader::new(r), writer: FrameWriter::new(w) }
    }

    /// Cancel-safe; see [`FrameReader::read_frame`].
    pub async fn read_frame(&mut self) -> Result<Option<In>, TransportError> {
        self.reader.read_frame().await
    }

    /// See [`FrameWriter::write_frame`].
    pub async fn write_frame(&mut self, frame: &Out) -> Result<(), TransportError> {
        self.writer.write_frame(frame).await
    }

    /// Splits into independently owned halves (for a reader task and a writer task).
    pub fn into_split(self) -> (FrameReader<tokio::io::ReadHalf<S>, In>, FrameWriter<tokio::io::WriteHalf<S>, Out>) {
        (self.reader, self.writer)
    }
}

mod tokio_stream_shim {
    //! `FramedRead` is a `futures::Stream`; this polls it without pulling in the `futures` crate.
    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_core::Stream;

    pub(super) async fn next_frame<S, T, E>(stream: &mut S) -> Result<Option<T>, E>
    where
        S: Stream<Item = Result<T, E>> + Unpin,
    {
        poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use tokio::io::AsyncWriteExt;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ping(u32, String);

    #[tokio::test]
    async fn frames_cross_a_stream_in_order_and_batched() {
        let (a, b) = tokio::io::duplex(64);
        let tx: Connection<_, Ping, Ping> = Connection::new(a);
        let mut rx: Connection<_, Ping, Ping> = Connection::new(b);
        let writer = tokio::spawn(async move {
            let (_, mut w) = tx.into_split();
            for i in 0..100 {
                w.queue(&Ping(i, "x".repeat(i as usize))).unwrap();
            }
            w.shutdown().await.unwrap();
        });
        for i in 0..100 {
            assert_eq!(rx.read_frame().await.unwrap(), Some(Ping(i, "x".repeat(i as usize))));
        }
        assert_eq!(rx.read_frame().await.unwrap(), None);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn stream_ending_inside_a_frame_is_truncated() {
        let (mut a, b) = tokio::io::duplex(64);
        let frame = crate::encode_frame(&Ping(1, "hello".into())).unwrap();
        a.write_all(&frame[..frame.len() - 1]).await.unwrap();
        drop(a);
        let mut rx: FrameReader<_, Ping> = FrameReader::new(b);
        assert!(matches!(rx.read_frame().await, Err(TransportError::Truncated)));
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
        drop(a);
        let mut rx: FrameReader<_, Ping> = FrameReader::new(b);
        assert!(matches!(rx.read_frame().await, Err(TransportError::Malformed(_))));
    }
}
