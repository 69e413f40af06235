//! Frames: a 4-byte big-endian length prefix followed by a `bincode` payload.
//!
//! ```text
//! +----------------+------------------------------+
//! | length: u32 BE | payload: bincode 2 (serde)   |   length = payload bytes, 0..=MAX_FRAME_LEN
//! +----------------+------------------------------+
//! ```
//!
//! **This is the only module that calls `bincode`.** `bincode` is pinned to `=2.0.1` (3.x is an
//! empty release and 1.x/2.x are marked unmaintained, RUSTSEC-2025-0141), so keeping it behind
//! [`encode_payload`] / [`decode_payload`] means it can be swapped in one place.
//!
//! Hostile input is bounded twice: the length prefix is checked against [`MAX_FRAME_LEN`] *before*
//! any buffer is reserved (so `ff ff ff ff` fails at once, without allocating 4 GiB), and bincode
//! decodes with the same limit, so no length field inside a payload can make it allocate more.

use std::marker::PhantomData;

use bytes::buf::BufMut;
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::TransportError;

/// Largest accepted payload of one frame, in bytes (256 KiB): room for a maximal message body
/// (64 KiB) with a maximal multicast list. Larger data (history) is sent as several frames.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// Bytes in the length prefix.
pub const LEN_PREFIX: usize = 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Encodes `value` as a payload (no length prefix).
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, TransportError> {
    let payload = bincode::serde::encode_to_vec(value, config()).map_err(|e| TransportError::Encode(e.to_string()))?;
    if payload.len() > MAX_FRAME_LEN {
        return Err(TransportError::FrameTooLarge { len: payload.len() as u64, max: MAX_FRAME_LEN });
    }
    Ok(payload)
}

/// Decodes a payload (no length prefix). Trailing bytes are an error.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, TransportError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(TransportError::FrameTooLarge { len: payload.len() as u64, max: MAX_FRAME_LEN });
    }
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config()).map_err(|e| TransportError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(TransportError::Malformed(format!("{} trailing bytes", payload.len() - used)));
    }
    Ok(value)
}

/// Decodes a payload into a type that may borrow from it (`&str` fields instead of `String`):
/// no allocation per string, for hot paths that only look at a message. Trailing bytes are an error.
pub fn decode_payload_borrowed<'de, T: Deserialize<'de>>(payload: &'de [u8]) -> Result<T, TransportError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(TransportError::FrameTooLarge { len: payload.len() as u64, max: MAX_FRAME_LEN });
    }
    let (value, used) = bincode::serde::borrow_decode_from_slice(payload, config())
        .map_err(|e| TransportError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(TransportError::Malformed(format!("{} trailing bytes", payload.len() - used)));
    }
    Ok(value)
}

/// Appends one complete frame (prefix + payload) for `value` to `dst`, encoding straight into `dst`
/// (no intermediate buffer). On error `dst` is left as it was.
pub fn encode_frame_into<T: Serialize>(value: &T, dst: &mut BytesMut) -> Result<(), TransportError> {
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = (&mut *dst).writer();
    if let Err(e) = bincode::serde::encode_into_std_write(value, &mut writer, config()) {
        dst.truncate(start);
        return Err(TransportError::Encode(e.to_string()));
    }
    let len = dst.len() - start - LEN_PREFIX;
    if len > MAX_FRAME_LEN {
        dst.truncate(start);
        return Err(TransportError::FrameTooLarge { len: len as u64, max: MAX_FRAME_LEN });
    }
    dst[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// One complete frame (prefix + payload) for `value`, ready to be written to any number of
/// connections: encode once, share the `Bytes` (cloning it is a reference-count increment).
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Bytes, TransportError> {
    let mut buf = BytesMut::new();
    encode_frame_into(value, &mut buf)?;
    Ok(buf.freeze())
}

fn length_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LEN_PREFIX)
        .big_endian()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

/// A `tokio-util` codec: decodes frames into `In`, encodes `&Out` values or pre-encoded [`Bytes`]
/// frames (from [`encode_frame`]).
///
/// "Not enough bytes yet" is `Ok(None)`, never an error; an oversized prefix is
/// [`TransportError::FrameTooLarge`] before anything is allocated; a bad payload is
/// [`TransportError::Malformed`].
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    lengths: LengthDelimitedCodec,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec with the default [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        FrameCodec { lengths: length_codec(), _types: PhantomData }
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

fn map_io(err: std::io::Error, src: &BytesMut) -> TransportError {
    if err.get_ref().is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>()) {
        let len = if src.len() >= LEN_PREFIX { u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as u64 } else { 0 };
        TransportError::FrameTooLarge { len, max: MAX_FRAME_LEN }
    } else {
        TransportError::Io(err)
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, TransportError> {
        let head = if src.len() >= LEN_PREFIX { Some(BytesMut::from(&src[..LEN_PREFIX])) } else { None };
        match self.lengths.decode(src) {
            Ok(Some(payload)) => decode_payload(&payload).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(map_io(e, head.as_ref().unwrap_or(src))),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, TransportError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(TransportError::Truncated),
        }
    }
}

impl<In, Out: Serialize> Encoder<&Out> for FrameCodec<In, Out> {
    type Error = TransportError;

    fn encode(&mut self, item: &Out, dst: &mut BytesMut) -> Result<(), TransportError> {
        encode_frame_into(item, dst)
    }
}

impl<In, Out> Encoder<Bytes> for FrameCodec<In, Out> {
    type Error = TransportError;

    /// Writes a frame that is already complete (prefix included), as made by [`encode_frame`].
    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), TransportError> {
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::{ChatMessage, MessageId, NodeId, Recipients, Timestamp, UserName};
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Text(String),
        Msg(ChatMessage),
        Numbers(Vec<u64>),
    }

    fn codec() -> FrameCodec<Sample, Sample> {
        FrameCodec::new()
    }

    fn arb_name() -> impl Strategy<Value = UserName> {
        "[a-z][a-z0-9_]{0,31}".prop_map(|s| UserName::new(s).unwrap())
    }

    fn arb_message() -> impl Strategy<Value = ChatMessage> {
        (
            any::<u64>(),
            any::<u64>(),
            arb_name(),
            prop_oneof![
                arb_name().prop_map(Recipients::Unicast),
                proptest::collection::vec(arb_name(), 1..5).prop_map(Recipients::Multicast),
                Just(Recipients::Broadcast)
            ],
            ".{0,100}",
            any::<u64>(),
        )
            .prop_map(|(o, s, sender, recipients, body, c)| ChatMessage {
                time: 0,
                id: MessageId::new(NodeId(o), s),
                sender,
                recipients,
                body,
                lamport: Timestamp::new(c, NodeId(o)),
            })
    }

    proptest! {
        #[test]
        fn round_trip_any_message(msg in arb_message(), split in 0usize..64) {
            let value = Sample::Msg(msg);
            let frame = encode_frame(&value).unwrap();
            // Fed in two pieces: the first piece alone must give Ok(None).
            let split = split.min(frame.len() - 1);
            let mut c = codec();
            let mut buf = BytesMut::from(&frame[..split]);
            prop_assert!(c.decode(&mut buf).unwrap().is_none());
            buf.extend_from_slice(&frame[split..]);
            prop_assert_eq!(c.decode(&mut buf).unwrap(), Some(value));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut c = codec();
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..bytes.len() + 1 {
                match c.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut buf = BytesMut::new();
        for i in 0..3 {
            encode_frame_into(&Sample::Text(format!("t{i}")), &mut buf).unwrap();
        }
        let mut c = codec();
        for i in 0..3 {
            assert_eq!(c.decode(&mut buf).unwrap(), Some(Sample::Text(format!("t{i}"))));
        }
        assert_eq!(c.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn oversized_prefix_fails_before_allocating() {
        // 5 bytes claiming 4 GiB.
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x00][..]);
        match codec().decode(&mut buf) {
            Err(TransportError::FrameTooLarge { len, max }) => {
                assert_eq!(len, u32::MAX as u64);
                assert_eq!(max, MAX_FRAME_LEN);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert!(buf.capacity() < 1024, "no large reservation: capacity {}", buf.capacity());
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error() {
        let frame = encode_frame(&Sample::Text("hello".into())).unwrap();
        let mut buf = BytesMut::from(&frame[..frame.len() - 2]);
        assert!(matches!(codec().decode_eof(&mut buf), Err(TransportError::Truncated)));
        let mut empty = BytesMut::new();
        assert!(codec().decode_eof(&mut empty).unwrap().is_none());
    }

    #[test]
    fn inner_length_fields_are_bounded() {
        // A payload claiming a Vec of 2^60 elements: bincode's limit refuses it without allocating.
        let mut payload = vec![2u8]; // variant index of Sample::Numbers (varint)
        payload.push(253); // varint marker for u64
        payload.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(decode_payload::<Sample>(&payload), Err(TransportError::Malformed(_))));
    }

    #[test]
    fn encoding_into_a_buffer_appends_whole_frames_and_leaves_it_intact_on_error() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        encode_frame_into(&Sample::Text("hello".into()), &mut buf).unwrap();
        assert_eq!(&buf[..2], b"xy");
        assert_eq!(&buf[2..], &encode_frame(&Sample::Text("hello".into())).unwrap()[..]);
        let too_big = Sample::Numbers(vec![u64::MAX; MAX_FRAME_LEN / 8 + 1]);
        assert!(matches!(encode_frame_into(&too_big, &mut buf), Err(TransportError::FrameTooLarge { .. })));
        assert_eq!(buf.len(), 2 + encode_frame(&Sample::Text("hello".into())).unwrap().len());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut payload = encode_payload(&Sample::Text("x".into())).unwrap();
        payload.push(0);
        assert!(matches!(decode_payload::<Sample>(&payload), Err(TransportError::Malformed(_))));
    }

    #[test]
    fn invalid_user_name_inside_a_frame_is_malformed() {
        #[derive(Serialize)]
        struct Raw {
            name: String,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Checked {
            name: UserName,
        }
        let payload = encode_payload(&Raw { name: "bad name".into() }).unwrap();
        assert!(matches!(decode_payload::<Checked>(&payload), Err(TransportError::Malformed(_))));
    }
}
