//! A TCP relay on loopback that tests use to break connections on purpose: it forwards every
//! connection it accepts to a target, and [`Relay::cut`] closes every connection open through it
//! at once (both directions, like a network blip); [`Relay::pause`] makes it refuse new
//! connections for a while (like an outage). The relay also counts the bytes it forwarded from the
//! server, so a test can check what a passive recorder would have seen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running relay; stopped (with every connection through it) when dropped.
pub struct Relay {
    addr: SocketAddr,
    cuts: watch::Sender<u64>,
    paused: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Relay {
    /// A relay on `127.0.0.1:0` to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (cuts, cut_rx) = watch::channel(0u64);
        let paused = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (p, a) = (Arc::clone(&paused), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if p.load(Ordering::Acquire) {
                    drop(client); // refused: closed at once
                    continue;
                }
                a.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(forward(client, target, cut_rx.clone()));
            }
        });
        Ok(Relay { addr, cuts, paused, accepted, task })
    }

    /// Where clients connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection open through the relay now.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// While paused, new connections are closed as soon as they are accepted.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// Copies both ways until either side ends or a cut comes.
async fn forward(mut client: TcpStream, target: SocketAddr, mut cuts: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    cuts.borrow_and_update();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
    // A cut: both sides see the connection end (a reset would do as well).
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
}
