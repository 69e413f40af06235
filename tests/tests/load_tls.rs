//! The load generator over TLS (`chat_cli::loadgen::LoadTls`, `fanbench --tls-fingerprint`), against
//! an in-process TLS server on loopback: a small fan-out and unicast arrive complete and checked; a
//! generator that pins another certificate, or speaks plaintext to the TLS port, gets a clear error
//! and no delivery, and the run ends within its bound.

use std::net::SocketAddr;
use std::time::Duration;

use chat_cli::loadgen::{self, ChatPubSub, LoadConfig, LoadReport, LoadTls, Pace, Pattern, Violations};
use chat_server::router::AuthMode;
use chat_server::server::ServerConfig;
use chat_server::tls::{Fingerprint, TlsServer, Trust};
use tests::TestServer;
use tokio::time::timeout;

/// Bound on every run (stopping the server is bounded by `TestServer::stop`).
const WAIT: Duration = Duration::from_secs(30);

struct Running {
    server: TestServer,
    addr: SocketAddr,
    fingerprint: Fingerprint,
}

impl Running {
    /// A TLS server (self-signed certificate in a fresh data directory) on a free loopback port.
    async fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsServer::self_signed(dir.path(), [127, 0, 0, 1].into()).unwrap();
        let fingerprint = tls.fingerprint;
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.path().to_path_buf()),
            tls: Some(tls),
            auth: AuthMode::Open,
            ..ServerConfig::default()
        };
        let server = TestServer::start_with(config, Some(dir)).await.unwrap();
        Running { addr: server.addr(), server, fingerprint }
    }

    async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

fn config(addr: SocketAddr, pattern: Pattern, tls: Option<LoadTls>) -> LoadConfig {
    let (publishers, pace) = match pattern {
        Pattern::Fanout => (2, Pace::Window(64)),
        Pattern::Unicast { .. } => (8, Pace::Window(1)),
    };
    LoadConfig {
        addr,
        subscribers: 8,
        publishers,
        messages: 40,
        size: 32,
        pace,
        pattern,
        timeout: Duration::from_secs(20),
        warmup: Duration::ZERO,
        tls,
    }
}

/// One run, its users named after `prefix` (names stay taken a moment after a run ends).
async fn run(config: &LoadConfig, prefix: &str) -> LoadReport {
    let pubsub = ChatPubSub::new(prefix, config.subscribers).unwrap();
    timeout(WAIT, loadgen::run(pubsub, config, &mut |_| {})).await.expect("the run ends within its bound").unwrap()
}

#[tokio::test]
async fn fanout_and_unicast_over_tls_arrive_complete_and_in_order() {
    let server = Running::start().await;
    let tls = LoadTls::new(Trust::Pinned(server.fingerprint), server.addr).unwrap();
    let fanout = run(&config(server.addr, Pattern::Fanout, Some(tls.clone())), "fan").await;
    assert!(fanout.complete(), "{:?}", fanout.errors);
    assert_eq!((fanout.published, fanout.deliveries), (2 * 40, 2 * 40 * 8));
    assert_eq!(fanout.violations, Violations::default());
    let unicast = run(&config(server.addr, Pattern::Unicast { seed: 3 }, Some(tls)), "uni").await;
    assert!(unicast.complete(), "{:?}", unicast.errors);
    assert_eq!((unicast.published, unicast.deliveries), (8 * 40, 8 * 40));
    assert_eq!(unicast.violations, Violations::default());
    server.stop().await;
}

#[tokio::test]
async fn another_pinned_certificate_or_plaintext_gets_a_clear_error_and_nothing() {
    let server = Running::start().await;
    let mut other = server.fingerprint;
    other.0[0] ^= 1;
    let wrong = LoadTls::new(Trust::Pinned(other), server.addr).unwrap();
    for (tls, prefix, says) in [(Some(wrong), "pin", "not the pinned"), (None, "plain", "this server requires TLS")] {
        let report = run(&config(server.addr, Pattern::Fanout, tls), prefix).await;
        assert!(!report.complete(), "{:?}", report.errors);
        assert_eq!(report.deliveries, 0, "{:?}", report.errors);
        assert!(!report.errors.is_empty(), "the failure is reported");
        assert!(report.errors.iter().all(|(e, _)| e.contains(says)), "{:?}", report.errors);
    }
    server.stop().await;
}

#[test]
fn trust_on_first_use_is_refused_for_load_runs() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = LoadTls::new(Trust::FirstUse(dir.path().join("known_servers")), addr).unwrap_err();
    assert!(err.to_string().contains("not on first use"), "{err}");
}
