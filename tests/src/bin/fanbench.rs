//! `fanbench`: the load generator behind `tests/bench/compare.sh`.
//!
//! | command      | what                                                                              |
//! |--------------|-----------------------------------------------------------------------------------|
//! | `bench`      | one run against `ours`, `redis` or `nats`; prints one `RESULT key=value ...` line |
//! | `idle`       | opens N idle connections; join time and server memory per connection           |
//! | `accounts`   | registers N accounts with one password in a data directory (for `logins`, `--storm`) |
//! | `argon2`     | times the server's password check (argon2id, its parameters), one after another   |
//! | `logins`     | a login storm alone: K clients log in with passwords over TLS; logins/s, login time |
//! | `summarize`  | medians and ratios of `RESULT` files, as Markdown tables                          |
//! | `chart`      | an SVG chart of `RESULT` files                                                    |
//!
//! Every target is driven by the same generator ([`chat_cli::loadgen`]), on one thread by
//! default, so the client-side cost is the same; only the protocol adapter differs. Loopback addresses only.
//! Ours may be reached over TLS (`--tls-fingerprint` or `--ca`); `bench --storm K` runs a login storm
//! ([`bench::logins`]) while the messages flow.

#[path = "../bench/mod.rs"]
mod bench;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chat_cli::loadgen::{
    self, ChatPubSub, IdleConfig, IdleReport, LoadConfig, LoadReport, Pace, Pattern, Phase, PubSub, RunProgress,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use bench::common::{Common, CpuMark, Target};
use bench::login_cmds::{self, StormAccounts};
use bench::logins;
use bench::nats::NatsPubSub;
use bench::procfs::{cpu_seconds, rss_kib};
use bench::record::Record;
use bench::redis::RedisPubSub;

/// Load generator and report tools for comparing the chat server with Redis and NATS.
#[derive(Debug, Parser)]
#[command(name = "fanbench")]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// One load run; prints a `RESULT` line.
    Bench(BenchArgs),
    /// Opens many idle connections; prints a `RESULT` line with join time and memory.
    Idle(IdleArgs),
    /// Registers accounts `{prefix}0 ..` with one password in a server's data directory.
    Accounts(login_cmds::AccountsArgs),
    /// Times the server's password check (argon2id with its parameters) on this thread.
    Argon2(login_cmds::Argon2Args),
    /// A login storm alone; prints a `RESULT` line with logins/s and login times.
    Logins(login_cmds::LoginsArgs),
    /// Prints medians and ratios of the `RESULT` lines in FILES.
    Summarize {
        /// Files holding `RESULT` lines.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The target the ratios compare the others with (default: `ours`, else the first).
        #[arg(long)]
        reference: Option<String>,
    },
    /// Draws an SVG chart of the `RESULT` lines in FILES.
    Chart {
        /// Files holding `RESULT` lines.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The SVG file to write.
        #[arg(long, default_value = "bench.svg")]
        out: PathBuf,
    },
}

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PatternArg {
    /// Every publisher to every subscriber.
    Fanout,
    /// Publisher i to a random subscriber other than i (as many of each).
    Unicast,
}

/// `bench` options.
#[derive(Debug, Clone, Args)]
struct BenchArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers (C).
    #[arg(long, default_value_t = 100)]
    subs: usize,
    /// Publishers (P); for unicast, as many as subscribers.
    #[arg(long, default_value_t = 1)]
    pubs: usize,
    /// Messages per publisher.
    #[arg(long, default_value_t = 100_000)]
    msgs: u64,
    /// Body bytes (>= 16; >= 24 for unicast).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Closed loop: messages published but not yet delivered (fan-out: all publishers together;
    /// unicast: per publisher).
    #[arg(long, default_value_t = 1000)]
    window: u64,
    /// Open loop: messages per second per publisher (0 = closed loop with --window).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Fan-out or unicast.
    #[arg(long, value_enum, default_value_t = PatternArg::Fanout)]
    pattern: PatternArg,
    /// Seed of the unicast recipients.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Do not record the latency of messages sent in the first MS milliseconds of publishing.
    #[arg(long, default_value_t = 0)]
    warmup_ms: u64,
    /// While the messages flow, this many clients log in with passwords over TLS, again and again
    /// (accounts from `fanbench accounts`; needs --tls-fingerprint or --ca). 0: no storm.
    #[arg(long, default_value_t = 0, requires = "password_file")]
    storm: usize,
    #[command(flatten)]
    storm_accounts: StormAccounts,
}

/// `idle` options.
#[derive(Debug, Clone, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// The server counts as settled once it used less than 2% of a CPU for this long (ms).
    #[arg(long, default_value_t = 1000)]
    quiet_ms: u64,
}

fn main() -> anyhow::Result<()> {
    // Reads the clock-tick rate now (it runs `getconf`), not in the middle of a run.
    let _ = cpu_seconds("self");
    match Cli::parse().cmd {
        Cmd::Bench(args) => {
            let record = runtime(args.common.threads)?.block_on(bench_cmd(&args))?;
            println!("{record}");
        }
        Cmd::Idle(args) => {
            let record = runtime(args.common.threads)?.block_on(idle_cmd(&args))?;
            println!("{record}");
        }
        Cmd::Accounts(args) => login_cmds::accounts_cmd(&args)?,
        Cmd::Argon2(args) => println!("{}", login_cmds::argon2_cmd(&args)?),
        Cmd::Logins(args) => {
            let record = runtime(args.common.threads)?.block_on(login_cmds::logins_cmd(&args))?;
            println!("{record}");
        }
        Cmd::Summarize { files, reference } => {
            print!("{}", bench::summary::render(&Record::read_all(&files)?, reference.as_deref()))
        }
        Cmd::Chart { files, out } => {
            bench::chart::draw(&Record::read_all(&files)?, &out)?;
            eprintln!("wrote {}", out.display());
        }
    }
    Ok(())
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    Ok(builder.enable_all().build()?)
}

async fn bench_cmd(args: &BenchArgs) -> anyhow::Result<Record> {
    let c = &args.common;
    c.check()?;
    let pattern = match args.pattern {
        PatternArg::Fanout => Pattern::Fanout,
        PatternArg::Unicast => Pattern::Unicast { seed: args.seed },
    };
    let pubs = if args.pattern == PatternArg::Unicast { args.subs } else { args.pubs };
    let config = LoadConfig {
        addr: c.addr,
        subscribers: args.subs,
        publishers: pubs,
        messages: args.msgs,
        size: args.size,
        pace: if args.rate > 0 { Pace::Rate(args.rate) } else { Pace::Window(args.window) },
        pattern,
        timeout: Duration::from_secs(c.timeout),
        warmup: Duration::from_millis(args.warmup_ms),
        tls: c.tls()?,
    };
    let unicast = args.pattern == PatternArg::Unicast;
    let prefix = c.prefix();
    // The storm waits for the publishing phase and stops when it is done.
    let (storm_run, storm_wait) = watch::channel(false);
    let storm = match args.storm {
        0 => None,
        clients => {
            let Some(tls) = config.tls.clone() else {
                bail!("--storm sends passwords: it needs TLS (--tls-fingerprint or --ca)")
            };
            Some(tokio::spawn(logins::storm(args.storm_accounts.storm(c.addr, tls, clients)?, storm_wait)))
        }
    };
    let report = match c.target {
        Target::Ours => drive(ChatPubSub::new(&prefix, args.subs)?, &config, c, &storm_run).await,
        Target::Redis => drive(RedisPubSub::new(&prefix, unicast), &config, c, &storm_run).await,
        Target::Nats => drive(NatsPubSub::new(&prefix, unicast), &config, c, &storm_run).await,
    };
    storm_run.send_replace(false);
    let storm = match storm {
        Some(task) => Some(task.await.context("the storm")??),
        None => None,
    };
    let (report, start, end) = report?;
    let mut r = c.record("bench");
    let pct = report.percentiles();
    let secs = report.elapsed.as_secs_f64();
    r.set("pattern", format!("{:?}", args.pattern).to_lowercase())
        .set("subs", args.subs)
        .set("pubs", pubs)
        .set("msgs", args.msgs)
        .set("size", args.size)
        .set("window", if args.rate > 0 { 0 } else { args.window })
        .set("rate", args.rate)
        .set("setup_ms", format!("{:.0}", report.setup.as_secs_f64() * 1e3))
        .set("secs", format!("{secs:.3}"))
        .set("published", report.published)
        .set("acked", report.acked)
        .set("delivered", report.deliveries)
        .set("expected", report.expected)
        .set("deliv_per_s", format!("{:.0}", report.deliveries_per_second()))
        .set("pub_per_s", format!("{:.0}", report.published_per_second()))
        .set("p50_us", pct.p50)
        .set("p90_us", pct.p90)
        .set("p99_us", pct.p99)
        .set("p999_us", pct.p999)
        .set("max_us", pct.max)
        .set("incomplete_subs", report.incomplete_subscribers)
        .set("warmup_ms", args.warmup_ms)
        .set("latency_samples", report.latency_us.len());
    if let (Some(a), Some(b)) = (start.server, end.server) {
        let cpu = b - a;
        r.set("server_cpu_s", format!("{cpu:.2}"))
            .set("cpu_s_per_M", format!("{:.3}", cpu / (report.deliveries.max(1) as f64 / 1e6)));
    }
    if let (Some(a), Some(b)) = (start.generator, end.generator) {
        r.set("gen_cpu_s", format!("{:.2}", b - a)).set("gen_util", format!("{:.2}", (b - a) / secs.max(1e-9)));
    }
    r.set("tls", u8::from(config.tls.is_some()));
    if let Some(storm) = &storm {
        r.set("storm_clients", args.storm);
        login_cmds::storm_fields(&mut r, storm);
    }
    // A refused or failed login in the storm makes the run not count: the storm was not the one asked for.
    let storm_ok = storm.as_ref().is_none_or(|s| s.failures == 0);
    let mut errors: Vec<String> = report.errors.iter().map(|(e, n)| format!("{n}x:{e}")).collect();
    errors.extend(storm.and_then(|s| s.first_error).map(|e| format!("storm:{e}")));
    let v = report.violations;
    if v.total() > 0 {
        // In `err`, not a new key: the RESULT line keeps its format (ok=0 says the run does not count).
        errors.push(format!(
            "violations:dup={},ooo={},unexpected={},diverged={}",
            v.duplicates, v.out_of_order, v.unexpected, v.diverged
        ));
    }
    r.set("ok", u8::from(report.complete() && storm_ok)).set("err", errors.join(";"));
    Ok(r)
}

/// Runs the load with `pubsub`, sampling CPU when publishing starts and when it is done; `storm` is
/// set while publishing.
async fn drive<W: PubSub>(
    pubsub: W,
    config: &LoadConfig,
    c: &Common,
    storm: &watch::Sender<bool>,
) -> anyhow::Result<(LoadReport, CpuMark, CpuMark)> {
    let pid = c.pid();
    let (mut start, mut end) = (CpuMark::default(), CpuMark::default());
    let show = c.progress;
    let mut on_progress = |p: &RunProgress| match p.phase {
        Phase::Publishing if start.generator.is_none() => {
            start = CpuMark::now(pid.as_deref());
            storm.send_replace(true);
        }
        Phase::Done => {
            storm.send_replace(false);
            end = CpuMark::now(pid.as_deref());
        }
        _ if show => eprint!(
            "\r{:?} connected={} published={} delivered={}/{} ({:.0}%)   ",
            p.phase,
            p.connected,
            p.published,
            p.delivered,
            p.expected,
            100.0 * p.delivered as f64 / p.expected.max(1) as f64
        ),
        _ => {}
    };
    let report = loadgen::run(pubsub, config, &mut on_progress).await.context("load run")?;
    if show {
        eprintln!();
    }
    Ok((report, start, end))
}

async fn idle_cmd(args: &IdleArgs) -> anyhow::Result<Record> {
    let c = &args.common;
    c.check()?;
    let Some(pid) = c.pid() else { bail!("idle needs --server-pid to read the server's memory") };
    let config =
        IdleConfig { addr: c.addr, clients: args.clients, timeout: Duration::from_secs(c.timeout), tls: c.tls()? };
    let before_kib = rss_kib(&pid).context("server RSS")?;
    let cpu_before = cpu_seconds(&pid);
    let quiet = Duration::from_millis(args.quiet_ms);
    let prefix = c.prefix();
    let held = |joined: IdleReport| {
        let pid = pid.clone();
        async move {
            let t = tokio::time::Instant::now();
            settle(&pid, quiet).await;
            (joined, t.elapsed(), rss_kib(&pid), cpu_seconds(&pid))
        }
    };
    let (report, (joined, settle_time, after_kib, cpu_after)) = match c.target {
        Target::Ours => loadgen::hold_idle(ChatPubSub::new(&prefix, 0)?, &config, held).await?,
        Target::Redis => loadgen::hold_idle(RedisPubSub::new(&prefix, true), &config, held).await?,
        Target::Nats => loadgen::hold_idle(NatsPubSub::new(&prefix, true), &config, held).await?,
    };
    let mut r = c.record("idle");
    r.set("clients", args.clients)
        .set("joined", joined.joined)
        .set("failed", report.failed.max(joined.failed))
        .set("join_ms", format!("{:.0}", joined.join_time.as_secs_f64() * 1e3))
        .set("settle_ms", format!("{:.0}", settle_time.as_secs_f64() * 1e3))
        .set("rss_before_kib", before_kib);
    if let Some(after) = after_kib {
        let per_conn = (after.saturating_sub(before_kib) * 1024) as f64 / joined.joined.max(1) as f64;
        r.set("rss_after_kib", after).set("rss_per_conn_b", format!("{per_conn:.0}"));
    }
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        r.set("server_cpu_s", format!("{:.2}", b - a));
    }
    r.set("tls", u8::from(config.tls.is_some()));
    let ok = joined.joined == args.clients && report.failed == 0 && joined.failed == 0;
    let errors: Vec<String> = report.errors.iter().map(|(e, n)| format!("{n}x:{e}")).collect();
    r.set("ok", u8::from(ok)).set("err", errors.join(";"));
    Ok(r)
}

/// Waits until the server has used under 2% of a CPU for `quiet` (the join notices are all out),
/// at most 120 s.
async fn settle(pid: &str, quiet: Duration) {
    let step = Duration::from_millis(200);
    let limit = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut calm_since = tokio::time::Instant::now();
    let mut last = cpu_seconds(pid).unwrap_or(0.0);
    while tokio::time::Instant::now() < limit {
        tokio::time::sleep(step).await;
        let now = cpu_seconds(pid).unwrap_or(last);
        if now - last > 0.02 * step.as_secs_f64() + 0.011 {
            calm_since = tokio::time::Instant::now();
        }
        last = now;
        if calm_since.elapsed() >= quiet {
            return;
        }
    }
}
