//! One publisher task: opens its connection, then publishes its messages as the pace allows
//! (closed loop on deliveries, or open loop at a rate) while a reader task consumes
//! acknowledgements, echoes and notices; and the seeded recipients of unicast runs.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use chat_server::tls::MaybeTls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout};

use super::protocol::{Dest, Incoming, Party, PubSub, write_body};
use super::shared::{Shared, open};
use super::{LoadConfig, MAX_WRITE, Pace, Pattern, READ_CHUNK, WINDOW_NAP};

/// splitmix64: the unicast recipients.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The recipients of each unicast publisher's messages: `targets[p][k]` for message `k` of `p`.
pub(super) fn unicast_targets(publishers: usize, messages: u64, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = seed;
    let n = publishers as u64;
    (0..n)
        .map(|p| (0..messages).map(|_| ((p + 1 + splitmix(&mut rng) % (n - 1).max(1)) % n) as u32).collect())
        .collect()
}

/// What one publisher did.
pub(super) struct PubOutcome {
    /// Messages it published.
    pub(super) published: u64,
    /// Acknowledgements it read (0 for protocols without them).
    pub(super) acked: u64,
    /// Why it ended early, if it did.
    pub(super) error: Option<String>,
}

/// One publisher: open, then publish its messages as the pace allows while a reader task consumes
/// acknowledgements, echoes and notices.
pub(super) async fn publisher<W: PubSub>(
    mut pubsub: W,
    config: LoadConfig,
    index: usize,
    targets: Option<Vec<u32>>,
    sh: Arc<Shared>,
) -> PubOutcome {
    let (stream, buf) = match open(&mut pubsub, config.addr, sh.tls.as_ref(), Party::Publisher(index)).await {
        Ok(x) => x,
        Err(e) => {
            sh.failed.fetch_add(1, Ordering::AcqRel);
            return PubOutcome { published: 0, acked: 0, error: Some(e.to_string()) };
        }
    };
    sh.ready.fetch_add(1, Ordering::AcqRel);
    // Dispatched once: a TCP stream splits into owned halves without a lock; a TLS stream, one
    // rustls state for both directions, through tokio's split.
    match stream {
        MaybeTls::Plain(tcp) => {
            let (read, write) = tcp.into_split();
            publish(pubsub, config, index, targets, sh, read, write, buf).await
        }
        MaybeTls::Tls(tls) => {
            let (read, write) = tokio::io::split(tls);
            publish(pubsub, config, index, targets, sh, read, write, buf).await
        }
    }
}

/// A publisher on its open connection: a reader task consumes what the server says on `read`
/// (`buf`: what was read past the login) while this one publishes on `write`.
#[allow(clippy::too_many_arguments)] // the publisher's own parameters, then its connection's halves
async fn publish<W, R, Wr>(
    mut pubsub: W,
    config: LoadConfig,
    index: usize,
    targets: Option<Vec<u32>>,
    sh: Arc<Shared>,
    mut read: R,
    mut write: Wr,
    mut buf: BytesMut,
) -> PubOutcome
where
    W: PubSub,
    R: AsyncRead + Unpin + Send + 'static,
    Wr: AsyncWrite + Unpin,
{
    let acked = Arc::new(AtomicU64::new(0));
    let mut reader_pubsub = pubsub.clone();
    let reader_acked = acked.clone();
    let reader_sh = sh.clone();
    let want_acks = pubsub.acks_publishes().then_some(config.messages);
    let reader = tokio::spawn(async move {
        let mut stop = reader_sh.stop.subscribe();
        let mut ignored = BytesMut::new();
        loop {
            let mut acks = 0;
            while let Some(incoming) = reader_pubsub.decode(&mut buf, &mut ignored)? {
                acks += u64::from(incoming == Incoming::Ack);
            }
            ignored.clear();
            let total = reader_acked.fetch_add(acks, Ordering::AcqRel) + acks;
            if want_acks.is_some_and(|want| total >= want) {
                return Ok(());
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                n = tokio::time::timeout_at(reader_sh.deadline, read.read_buf(&mut buf)) => match n {
                    Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(reader_sh.expired()),
                },
            }
        }
    });
    let mut out = BytesMut::with_capacity(MAX_WRITE + 1024);
    let mut body = Vec::with_capacity(config.size);
    let mut sent = 0u64;
    // Stamps strictly increase per publisher (subscribers check it), even if the clock did not move.
    let mut last_stamp = 0u64;
    let keepalive = pubsub.keepalive(&mut BytesMut::new());
    let mut last_write = Instant::now();
    let start = Instant::now();
    let result: io::Result<()> = async {
        while !sh.go.load(Ordering::Acquire) {
            if Instant::now() >= sh.deadline {
                return Err(sh.expired());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sh.first_publish_ns.fetch_min(sh.now_ns(), Ordering::AcqRel);
        while sent < config.messages {
            if Instant::now() >= sh.deadline {
                return Err(sh.expired());
            }
            let mut allowed = config.messages - sent;
            match config.pace {
                Pace::Rate(rate) => {
                    let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
                    if due <= sent {
                        let next = start + Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
                        tokio::time::sleep_until(next.min(sh.deadline)).await;
                        continue;
                    }
                    allowed = allowed.min(due - sent);
                }
                Pace::Window(window) => {
                    let in_flight = match config.pattern {
                        Pattern::Fanout => sh
                            .published
                            .load(Ordering::Acquire)
                            .saturating_sub(sh.delivered.load(Ordering::Acquire) / sh.subscribers),
                        Pattern::Unicast { .. } => {
                            sent.saturating_sub(sh.delivered_from[index].load(Ordering::Acquire))
                        }
                    };
                    if in_flight >= window {
                        let _ = timeout(WINDOW_NAP, sh.wake[index].notified()).await;
                        if let Some(every) = keepalive
                            && last_write.elapsed() >= every
                        {
                            pubsub.keepalive(&mut out);
                            write.write_all(&out).await?;
                            write.flush().await?;
                            out.clear();
                            last_write = Instant::now();
                        }
                        continue;
                    }
                    allowed = allowed.min(window - in_flight);
                }
            }
            while allowed > 0 && out.len() < MAX_WRITE {
                body.clear();
                last_stamp = sh.now_ns().max(last_stamp + 1);
                write_body(&mut body, config.size, last_stamp, index);
                let dest = match &targets {
                    Some(t) => Dest::Subscriber(t[sent as usize] as usize),
                    None => Dest::Everyone,
                };
                pubsub.encode_publish(dest, &body, &mut out)?;
                sh.published.fetch_add(1, Ordering::AcqRel);
                sent += 1;
                allowed -= 1;
            }
            write.write_all(&out).await?;
            // TLS may hold back what the socket did not take at once; a TCP stream holds nothing.
            write.flush().await?;
            out.clear();
            last_write = Instant::now();
        }
        Ok(())
    }
    .await;
    // Publishers whose protocol acknowledges wait for every acknowledgement; the others' readers
    // are stopped with the run.
    let read_result = if want_acks.is_some() && result.is_ok() {
        match tokio::time::timeout_at(sh.deadline, reader).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(io::Error::other(join.to_string())),
            Err(_) => Err(sh.expired()),
        }
    } else {
        let mut stop = sh.stop.subscribe();
        let _ = tokio::time::timeout_at(sh.deadline, stop.wait_for(|stopped| *stopped)).await;
        reader.abort();
        Ok(())
    };
    let error = result.err().or(read_result.err()).map(|e| e.to_string());
    if error.is_some() {
        sh.publisher_errors.fetch_add(1, Ordering::AcqRel);
    }
    PubOutcome { published: sent, acked: acked.load(Ordering::Acquire), error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_targets_are_never_the_sender() {
        let t = unicast_targets(5, 200, 9);
        for (p, row) in t.iter().enumerate() {
            assert_eq!(row.len(), 200);
            assert!(row.iter().all(|&j| j as usize != p && (j as usize) < 5));
        }
    }
}
