//! `p2pbench --broadcast M --window W` (closed loop) and `--rate R` (open loop): N library nodes,
//! one process each.
//!
//! `chat-cli` sends one line at a time (each waits for its receipt), and rendering and parsing a
//! JSON line per delivery costs as much as ordering it. Here p2pbench starts N copies of itself as
//! nodes (`--child NAME`, hidden), each joining through [`chat_p2p::join`] as `chat-cli` does (no
//! flood control), with [`chat_p2p::P2pSender`] keeping up to W broadcasts in flight (closed loop,
//! like the server benchmark's `WINDOW`), or sending R broadcasts per second on a schedule whatever
//! the receipts (open loop). Every body carries its send time (its scheduled time in open loop, so a
//! stall counts against latency); each node counts its deliveries and records send-to-delivery
//! latency itself, then prints one `DONE` line with a histogram of it. Nodes stay in the group
//! until the parent has every `DONE` line, and are killed at the end; every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use chat_core::{Event, OutgoingMessage, Recipients, Timestamp, Transport, UserName};
use chat_p2p::{P2pConfig, P2pSender};
use hdrhistogram::Histogram;

/// Longest a run may take once started.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// Longest the group may take to form.
const FORM_LIMIT: Duration = Duration::from_secs(60);

/// How the nodes send.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Up to this many broadcasts in flight per node.
    Window(usize),
    /// This many broadcasts per second per node, on a schedule.
    Rate(u64),
}

impl Pace {
    fn args(self) -> [String; 2] {
        match self {
            Pace::Window(w) => ["--window".into(), w.to_string()],
            Pace::Rate(r) => ["--rate".into(), r.to_string()],
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// One node process (`p2pbench --child`); killed on drop.
struct ChildNode {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildNode {
    /// Waits for a line starting with `prefix`.
    fn expect(&self, prefix: &str, deadline: Instant) -> Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).with_context(|| format!("no {prefix} line in time"))?;
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }

    fn say(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }
}

/// The parent: starts `nodes` children, starts them together, merges their reports.
pub fn run(exe: &Path, nodes: usize, port: u16, per_node: usize, pace: Pace, single_thread: bool) -> Result<()> {
    let mut children = Vec::new();
    for i in 0..nodes {
        let mut args = vec!["--child".to_string(), format!("n{i}"), "--nodes".into(), nodes.to_string()];
        args.extend(["--port".into(), port.to_string(), "--broadcast".into(), per_node.to_string()]);
        args.extend(pace.args());
        if single_thread {
            args.push("--single-thread".into());
        }
        let mut child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        children.push(ChildNode { child, stdin, lines });
        // The first node founds the group after its join timeout; the others join it.
        std::thread::sleep(if i == 0 { Duration::from_millis(1700) } else { Duration::from_millis(150) });
    }
    let formed = Instant::now() + FORM_LIMIT;
    for (i, c) in children.iter().enumerate() {
        c.expect("READY", formed).with_context(|| format!("node n{i} not ready"))?;
    }
    std::thread::sleep(Duration::from_millis(300));
    for c in children.iter_mut() {
        c.say("GO")?;
    }
    let finished = Instant::now() + RUN_LIMIT + Duration::from_secs(10);
    let mut latency = Histogram::<u64>::new(3)?;
    let (mut delivered, mut start, mut last) = (0u64, u64::MAX, 0u64);
    for c in &children {
        let done = c.expect("DONE", finished).context("a node did not finish")?;
        let mut fields = done.split_whitespace().skip(1);
        let mut next = || fields.next().context("short DONE line");
        delivered += next()?.parse::<u64>()?;
        start = start.min(next()?.parse()?);
        last = last.max(next()?.parse()?);
        for pair in next()?.split(',').filter(|p| !p.is_empty()) {
            let (v, n) = pair.split_once(':').context("histogram pair")?;
            latency.record_n(v.parse()?, n.parse::<u64>()?)?;
        }
    }
    for c in children.iter_mut() {
        let _ = c.say("STOP");
    }
    let expected = (nodes * per_node * nodes) as u64;
    let secs = (last.saturating_sub(start) as f64 / 1e9).max(1e-9);
    let (mode, value) = match pace {
        Pace::Window(w) => ("window", w as u64),
        Pace::Rate(r) => ("rate_per_node", r),
    };
    println!(
        "RESULT scenario=p2p-broadcast-lib nodes={nodes} {mode}={value} single_thread={single_thread} per_node={per_node} deliveries={delivered} expected={expected} deliv_per_s={:.0} latency_p50_us={} p99_us={} p999_us={} max_us={}",
        delivered as f64 / secs,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999),
        latency.max()
    );
    Ok(())
}

/// A child: one node, driven by the parent through its standard input.
pub fn child(name: &str, nodes: usize, port: u16, per_node: usize, pace: Pace, single_thread: bool) -> Result<()> {
    // chat-cli's runtime by default; one thread (no wake-ups across threads) with `--single-thread`.
    let mut builder = if single_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build()?;
    let commands = parent_commands();
    let name = UserName::new(name)?;
    let mut config = P2pConfig::new(name.clone());
    config.group = SocketAddrV4::new([239, 255, 77, 77].into(), port);
    config.limits = None;
    let mut transport = runtime.block_on(chat_p2p::join(config))?;
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + FORM_LIMIT;
        while transport.peers().await?.len() < nodes {
            if tokio::time::Instant::now() > deadline {
                bail!("the group did not reach {nodes} nodes");
            }
            // Drain the join events meanwhile.
            let _ = tokio::time::timeout(Duration::from_millis(20), transport.recv()).await;
        }
        anyhow::Ok(())
    })?;
    println!("READY");
    let (mut delivered, mut last, mut latency) = (0u64, 0u64, Histogram::<u64>::new(3)?);
    let start = runtime.block_on(async {
        // Wait for GO while reading events, so the bounded event queue never fills.
        // Others may start first: their messages are kept for counting.
        let deadline = tokio::time::Instant::now() + FORM_LIMIT;
        let mut early = Vec::new();
        loop {
            match commands.try_recv() {
                Ok(line) if line == "GO" => break,
                Ok(_) | Err(TryRecvError::Empty) if tokio::time::Instant::now() < deadline => {}
                _ => bail!("no GO from the parent"),
            }
            if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(5), transport.recv()).await {
                early.push(event);
            }
        }
        let start = unix_nanos();
        let sender = transport.sender();
        spawn_sends(&sender, name.as_str(), per_node, pace, start);
        let expected = (nodes * per_node) as u64;
        let deadline = tokio::time::Instant::now() + RUN_LIMIT;
        let mut early = early.into_iter();
        while delivered < expected {
            if let Some(event) = early.next() {
                count(event, &mut delivered, &mut last, &mut latency)?;
                continue;
            }
            let event = match tokio::time::timeout(Duration::from_secs(3), transport.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    eprintln!("{name}: {delivered} of {expected} delivered, nothing for 3 s");
                    continue;
                }
                Err(_) => break,
            };
            count(event, &mut delivered, &mut last, &mut latency)?;
        }
        anyhow::Ok(start)
    })?;
    let hist: Vec<String> =
        latency.iter_recorded().map(|v| format!("{}:{}", v.value_iterated_to(), v.count_at_value())).collect();
    println!("DONE {delivered} {start} {last} {}", hist.join(","));
    // Stay in the group (reading events) until the parent says STOP or closes stdin.
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + RUN_LIMIT;
        while matches!(commands.try_recv(), Err(TryRecvError::Empty)) && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(20), transport.recv()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), transport.leave()).await;
    });
    Ok(())
}

/// Counts a delivery of the benchmark's and records its latency from the time in its body.
fn count(event: Event, delivered: &mut u64, last: &mut u64, latency: &mut Histogram<u64>) -> Result<()> {
    let Event::Message(m) = event else { return Ok(()) };
    if !m.body.starts_with("b ") {
        return Ok(());
    }
    let now = unix_nanos();
    *delivered += 1;
    *last = now;
    if let Some(sent) = m.body.rsplit(' ').next().and_then(|t| t.parse::<u64>().ok()) {
        latency.record(now.saturating_sub(sent) / 1000)?;
    }
    Ok(())
}

/// The parent's lines on standard input (`GO`, `STOP`), read by a thread; disconnected at end of input.
fn parent_commands() -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Starts the sending tasks: W workers each sending its next broadcast once the previous is
/// ordered, or one task sending on the schedule of R per second.
fn spawn_sends(sender: &P2pSender, name: &str, per_node: usize, pace: Pace, start: u64) {
    let body = |k: usize, at: u64| format!("b {name} {k} {at}");
    let msg = |body: String| OutgoingMessage { recipients: Recipients::Broadcast, body, sent_at: Timestamp::default() };
    match pace {
        Pace::Window(w) => {
            let w = w.max(1);
            for j in 0..w {
                let (sender, bodies) = (sender.clone(), (j..per_node).step_by(w).collect::<Vec<_>>());
                let name = name.to_string();
                tokio::spawn(async move {
                    for k in bodies {
                        if sender.send(msg(format!("b {name} {k} {}", unix_nanos()))).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        Pace::Rate(r) => {
            let sender = sender.clone();
            let bodies: Vec<(u64, String)> = (0..per_node)
                .map(|k| {
                    let offset = k as u64 * 1_000_000_000 / r.max(1);
                    (offset, body(k, start + offset))
                })
                .collect();
            tokio::spawn(async move {
                let t0 = tokio::time::Instant::now();
                for (offset, body) in bodies {
                    tokio::time::sleep_until(t0 + Duration::from_nanos(offset)).await;
                    let sender = sender.clone();
                    // Not waiting for the receipt: the schedule goes on whatever ordering does.
                    tokio::spawn(async move { sender.send(msg(body)).await });
                }
            });
        }
    }
}
