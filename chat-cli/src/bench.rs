//! `chat-cli bench`: the fan-out workload against a running server, so anyone can size a deployment.
//!
//! It drives `chat_cli::loadgen`, this package's library (the same generator as the side-by-side
//! benchmark and the load tests of the `tests` package): C subscribers and P publishers log in, quietly
//! (nobody is told), join a room of their own (`#bench<pid>`), the publishers send to the room, and
//! every subscriber must receive every message, exactly once and in order. So a benchmark never
//! floods the people chatting on the server.
//! A progress bar goes to standard error; the summary to standard output (one JSON object with `--json`).

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{Context, Result};
use chat_cli::loadgen::{self, ChatPubSub, LoadConfig, Pace, Pattern, Phase};
use chat_core::RoomName;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::BenchArgs;

/// Runs the benchmark; returns whether the run was complete.
pub async fn run(server: &str, args: &BenchArgs, json_output: bool) -> Result<bool> {
    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("bad --server {server}"))?
        .next()
        .with_context(|| format!("{server} resolves to no address"))?;
    let config = LoadConfig {
        addr,
        subscribers: args.subs.max(1),
        publishers: args.pubs.max(1),
        messages: args.msgs.max(1),
        size: args.size,
        pace: match args.rate {
            Some(rate) => Pace::Rate(rate.max(1)),
            None => Pace::Window(args.window.max(1)),
        },
        pattern: Pattern::Fanout,
        timeout: Duration::from_secs(args.timeout.max(1)),
        warmup: Duration::ZERO,
        tls: None,
    };
    let prefix = format!("bench{}-", std::process::id() % 100_000);
    // In a room of its own, with quiet sessions: a benchmark never floods the people on the server.
    let room = RoomName::new(format!("#{}", prefix.trim_end_matches('-'))).context("bench room name")?;
    let pubsub = ChatPubSub::new(&prefix, config.subscribers).context("cannot prepare the user names")?.in_room(room);
    let bar = ProgressBar::new(config.subscribers as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_prefix("connecting");
    let mut progress = |p: &loadgen::RunProgress| match p.phase {
        Phase::Connecting => {
            bar.set_position(p.connected as u64);
            bar.set_message(format!("{} failed", p.failed));
        }
        Phase::Publishing | Phase::Done => {
            if bar.length() != Some(p.expected) {
                bar.set_length(p.expected.max(1));
                bar.set_prefix("delivering");
            }
            bar.set_position(p.delivered);
            let rate = p.delivered as f64 / p.elapsed.as_secs_f64().max(1e-9);
            bar.set_message(format!("{:.2} M deliveries/s", rate / 1e6));
        }
    };
    let report = loadgen::run(pubsub, &config, &mut progress).await.context("the benchmark failed")?;
    bar.finish_and_clear();
    let p = report.percentiles();
    let complete = report.complete();
    if json_output {
        let summary = json!({
            "type": "bench",
            "subscribers": config.subscribers,
            "publishers": config.publishers,
            "messages": report.published,
            "deliveries": report.deliveries,
            "expected": report.expected,
            "seconds": report.elapsed.as_secs_f64(),
            "deliveries_per_s": report.deliveries_per_second(),
            "p50_us": p.p50, "p99_us": p.p99, "p999_us": p.p999, "max_us": p.max,
            "complete": complete,
        });
        println!("{summary}");
    } else {
        println!(
            "{} subscribers, {} publisher(s), {} messages of {} B: {} of {} deliveries in {:.2} s",
            config.subscribers,
            config.publishers,
            report.published,
            config.size,
            report.deliveries,
            report.expected,
            report.elapsed.as_secs_f64()
        );
        println!(
            "{:.2} M deliveries/s; latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            report.deliveries_per_second() / 1e6,
            p.p50,
            p.p99,
            p.p999,
            p.max
        );
        for (error, count) in &report.errors {
            println!("! {count} connection(s): {error}");
        }
        let v = report.violations;
        if v.total() > 0 {
            println!(
                "! violations: {} duplicate(s), {} out of order, {} unexpected, {} subscriber(s) in another order",
                v.duplicates, v.out_of_order, v.unexpected, v.diverged
            );
        }
        if !complete {
            println!("! incomplete: {} subscriber(s) missed messages", report.incomplete_subscribers);
        }
    }
    Ok(complete)
}
