//! The signals that end a client session cleanly: SIGINT (Ctrl-C when the terminal is not in raw
//! mode, `kill -INT`), SIGTERM (`kill`, a service manager) and SIGHUP (the terminal went away).
//! Each leaves like `/quit`: the terminal is given back and the server told.

/// Listens for the signals from creation on.
pub struct Signals {
    #[cfg(unix)]
    streams: Vec<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts listening (a signal that cannot be listened for is simply not caught).
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
            Signals { streams: kinds.into_iter().filter_map(|kind| signal(kind).ok()).collect() }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes when one of the signals arrives. Cancel-safe: a signal that arrives while this is
    /// not awaited is reported by the next call.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let any = std::future::poll_fn(|cx| {
                for stream in &mut self.streams {
                    if stream.poll_recv(cx).is_ready() {
                        return std::task::Poll::Ready(());
                    }
                }
                std::task::Poll::Pending
            });
            any.await
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
