//! Hostile input against the real decoder, in a separate process under a 1 GiB address-space limit
//! (`ulimit -v`): the `decode_frames` example must refuse a frame claiming 4 GiB with an error and
//! exit code 3, quickly, rather than abort on a failed allocation; truncated frames and garbage must
//! never make it panic (exit code 101).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_core::{ChatMessage, MessageId, NodeId, Recipients, Timestamp, UserName};
use chat_transport::encode_frame;

/// Longest a run of the example may take before it is killed.
const DEADLINE: Duration = Duration::from_secs(10);

/// What a run of the example produced.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `target/<profile>/examples/decode_frames`, next to the `deps` folder this test runs from
/// (`cargo test` builds the examples before running the tests).
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(format!("decode_frames{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not found: `cargo test -p chat-transport` builds it (`--test hostile` alone does not: run `cargo build -p chat-transport --example decode_frames` first)",
        path.display()
    );
    path
}

/// Runs the example under `ulimit -v 1048576` with `input` on stdin; kills it after [`DEADLINE`].
fn run(input: &[u8]) -> Outcome {
    let script = format!("ulimit -v 1048576; exec '{}'", example().display());
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bash");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // The example may stop reading early (on an error): a broken pipe here is fine.
    let _ = stdin.write_all(input);
    drop(stdin);
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait for the example") {
            Some(_) => break,
            None if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the example did not finish within {DEADLINE:?}");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let out = child.wait_with_output().expect("collect output");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn message(seq: u64, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: UserName::new("alice").unwrap(),
        recipients: Recipients::Broadcast,
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }
}

#[test]
fn a_frame_claiming_4_gib_is_refused_quickly_under_a_memory_limit() {
    let start = Instant::now();
    let out = run(&[0xff, 0xff, 0xff, 0xff, 0x00]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("exceeds the limit"), "{out:?}");
    assert!(out.stderr.contains("4294967295"), "{out:?}");
    assert!(start.elapsed() < DEADLINE, "took {:?}", start.elapsed());
}

#[test]
fn valid_frames_then_clean_eof_exit_0() {
    let mut input = Vec::new();
    for seq in 1..=3 {
        input.extend_from_slice(&encode_frame(&message(seq, &format!("hello {seq}"))).unwrap());
    }
    let out = run(&input);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert!(lines[0].starts_with("frame 1: id=0:1 lamport=1.0 broadcast from alice"), "{out:?}");
    assert!(lines[2].ends_with("\"hello 3\""), "{out:?}");
    assert_eq!(lines[3], "end of input after 3 frame(s)");
}

#[test]
fn a_valid_frame_then_a_truncated_one_exits_3_after_printing_the_first() {
    let first = encode_frame(&message(1, "complete")).unwrap();
    let second = encode_frame(&message(2, "cut short")).unwrap();
    let mut input = first.to_vec();
    input.extend_from_slice(&second[..second.len() - 3]);
    let out = run(&input);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    assert!(out.stdout.contains("\"complete\""), "{out:?}");
    assert!(out.stderr.contains("closed in the middle of a frame"), "{out:?}");
}

/// splitmix64: deterministic pseudo-random bytes from a printed seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn garbage_never_panics() {
    for seed in 0..24u64 {
        let mut state = seed;
        let len = (splitmix(&mut state) % 2048) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| splitmix(&mut state) as u8).collect();
        // Half the cases get a plausible small length prefix, so the payload decoder is exercised too.
        if seed % 2 == 1 && input.len() >= 4 {
            let claimed = ((input.len() - 4) as u32).min(splitmix(&mut state) as u32 % 512);
            input[..4].copy_from_slice(&claimed.to_be_bytes());
        }
        let out = run(&input);
        assert!(matches!(out.code, Some(0) | Some(3)), "seed {seed}: {out:?}");
        if out.code == Some(3) {
            assert!(out.stderr.starts_with("error: "), "seed {seed}: {out:?}");
        }
    }
}
