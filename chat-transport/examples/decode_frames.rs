//! Decodes chat frames from stdin: one line per frame, exit 0 at a clean end of input, or the error
//! and exit 3. Hostile input (a length prefix claiming 4 GiB, a truncated frame, garbage) ends with
//! an error message, never an allocation failure or a panic.
//!
//! ```text
//! printf '\xff\xff\xff\xff\x00' | cargo run -p chat-transport --example decode_frames
//! error: frame of 4294967295 bytes exceeds the limit of 262144 bytes
//! ```

use std::io::Read;
use std::process::ExitCode;

use bytes::BytesMut;
use chat_core::ChatMessage;
use chat_transport::{FrameCodec, TransportError};
use tokio_util::codec::Decoder;

/// Bytes read from stdin at a time.
const CHUNK: usize = 64 * 1024;

fn main() -> ExitCode {
    match run() {
        Ok(frames) => {
            println!("end of input after {frames} frame(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

/// Decodes every frame on stdin; returns how many there were.
fn run() -> Result<usize, TransportError> {
    let mut codec: FrameCodec<ChatMessage, ()> = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut stdin = std::io::stdin().lock();
    let mut frames = 0;
    loop {
        let n = stdin.read(&mut chunk)?;
        if n == 0 {
            while let Some(msg) = codec.decode_eof(&mut buf)? {
                frames += 1;
                print_frame(frames, &msg);
            }
            return Ok(frames);
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(msg) = codec.decode(&mut buf)? {
            frames += 1;
            print_frame(frames, &msg);
        }
    }
}

fn print_frame(n: usize, msg: &ChatMessage) {
    println!(
        "frame {n}: id={} lamport={} {} from {} ({} bytes): {:?}",
        msg.id,
        msg.lamport,
        msg.kind(),
        msg.sender,
        msg.body.len(),
        msg.body.chars().take(60).collect::<String>()
    );
}
