//! Load tests of the server topology, driven by `chat_cli::loadgen` against an in-process server
//! (see `tests::load`). The full runs are `#[ignore]`d; run them with
//! `cargo test -p tests --release -- --ignored --nocapture` (sizes from `LOAD_CLIENTS`,
//! `LOAD_MESSAGES`). A small smoke run is part of the default suite.

use std::sync::Mutex;
use std::time::Duration;

use chat_cli::loadgen::Violations;
use tests::Log;
use tests::load::{LoadConfig, LoadReport, Scenario, run};

/// The runs share two CPU cores: one at a time, so each measures the server, not its neighbours.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one scenario on its own multi-thread runtime and prints its `LOAD` line.
fn measure(scenario: Scenario, config: LoadConfig) -> LoadReport {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let report = runtime.block_on(run(scenario, &config)).unwrap_or_else(|e| panic!("{e:#}"));
    runtime.shutdown_timeout(Duration::from_secs(5));
    println!("{report}");
    let senders = if scenario == Scenario::Fanout { 4.min(config.clients) } else { config.clients };
    assert_eq!(report.messages, (senders * config.messages) as u64);
    let expected = match scenario {
        Scenario::Fanout => report.messages * config.clients as u64,
        Scenario::Unicast => report.messages,
    };
    assert_eq!(report.deliveries, expected, "every message delivered exactly once to each recipient");
    assert_eq!(report.latency_us.len(), expected, "one latency sample per delivery");
    assert_eq!(
        report.violations,
        Violations::default(),
        "no duplicates, each sender's messages in order, only messages meant for the receiver, one server order"
    );
    report
}

#[test]
fn smoke_fanout_and_unicast_with_the_log_on() {
    let fanout = measure(Scenario::Fanout, LoadConfig::smoke(Log::On));
    assert_eq!(fanout.deliveries, 4 * 50 * 20);
    let unicast = measure(Scenario::Unicast, LoadConfig::smoke(Log::On));
    assert_eq!(unicast.deliveries, 20 * 50);
}

#[test]
#[ignore = "load test: cargo test -p tests --release -- --ignored --nocapture"]
fn load_fanout_log_on() {
    measure(Scenario::Fanout, LoadConfig::from_env(Log::On));
}

#[test]
#[ignore = "load test: cargo test -p tests --release -- --ignored --nocapture"]
fn load_fanout_log_off() {
    measure(Scenario::Fanout, LoadConfig::from_env(Log::Off));
}

#[test]
#[ignore = "load test: cargo test -p tests --release -- --ignored --nocapture"]
fn load_unicast_log_on() {
    measure(Scenario::Unicast, LoadConfig::from_env(Log::On));
}

#[test]
#[ignore = "load test: cargo test -p tests --release -- --ignored --nocapture"]
fn load_unicast_log_off() {
    measure(Scenario::Unicast, LoadConfig::from_env(Log::Off));
}
