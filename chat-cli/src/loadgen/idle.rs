//! [`hold_idle`]: many connections that publish nothing, held open while the caller measures the
//! server (memory per connection, join time).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[cfg(doc)]
use super::CONNECT_BATCH;
use super::protocol::PubSub;
use super::report::count_error;
use super::shared::Shared;
use super::subscriber::spawn_subscribers;
use super::tls::LoadTls;

/// Parameters of one run of [`hold_idle`].
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// The server (loopback).
    pub addr: SocketAddr,
    /// Number of connections to open and hold.
    pub clients: usize,
    /// Bound on the whole run.
    pub timeout: Duration,
    /// TLS on every connection (`None`: plaintext).
    pub tls: Option<LoadTls>,
}

/// The outcome of [`hold_idle`].
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// Connections opened and confirmed.
    pub joined: usize,
    /// Time from the first connect to the last confirmation.
    pub join_time: Duration,
    /// Connections that failed to open, or were lost while held.
    pub failed: usize,
    /// Distinct errors, with how many connections hit each.
    pub errors: Vec<(String, usize)>,
}

/// Opens `clients` subscriber connections that publish nothing (in batches of [`CONNECT_BATCH`]),
/// then calls `held` with the join report while keeping every connection alive (reading, answering
/// pings, sending keep-alives); closes them all when `held`'s future completes. Returns the final
/// report (`failed` includes connections lost while held) and `held`'s result.
pub async fn hold_idle<W, F, Fut, T>(pubsub: W, config: &IdleConfig, held: F) -> io::Result<(IdleReport, T)>
where
    W: PubSub,
    F: FnOnce(IdleReport) -> Fut,
    Fut: Future<Output = T>,
{
    let sh = Shared::new(config.clients, 0, config.timeout, config.tls.clone());
    // Nothing is published: no subscriber expects anything from anyone.
    let tasks = spawn_subscribers(&pubsub, config.addr, vec![Vec::new(); config.clients], true, &sh, &mut |_| {}).await;
    let joined_at = sh.origin.elapsed();
    let joined = IdleReport {
        joined: sh.ready.load(Ordering::Acquire),
        join_time: joined_at,
        failed: sh.failed.load(Ordering::Acquire),
        errors: Vec::new(),
    };
    let value = tokio::time::timeout_at(sh.deadline, held(joined.clone()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the idle run exceeded its deadline"))?;
    let _ = sh.stop.send(true);
    let mut report = joined;
    report.failed = 0;
    for task in tasks {
        let error = match tokio::time::timeout_at(sh.deadline + Duration::from_secs(2), task).await {
            Ok(Ok(o)) => o.error,
            Ok(Err(join)) => Some(join.to_string()),
            Err(_) => Some("hung".into()),
        };
        if let Some(e) = error {
            report.failed += 1;
            count_error(&mut report.errors, e);
        }
    }
    Ok((report, value))
}
