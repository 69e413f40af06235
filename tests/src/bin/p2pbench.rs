//! p2pbench: P2P failover on loopback with real `chat-cli --mode p2p` processes.
//!
//! Each trial starts N nodes (multicast on 127.0.0.1, a trial-unique port), waits until they agree on
//! a coordinator, kills it with SIGKILL, and has every survivor broadcast a message at once (while
//! there is no coordinator). It measures the time until every survivor has reported the same new
//! coordinator, and counts survivors' messages that some survivor never delivered. Every process is
//! killed at the end of its trial; every wait is bounded.
//!
//! ```sh
//! cargo build --release -p chat-cli -p tests
//! target/release/p2pbench --nodes 10 --trials 20                     # defaults: 250 ms heartbeat
//! target/release/p2pbench --nodes 10 --trials 20 --heartbeat-ms 50
//! target/release/p2pbench --nodes 10 --broadcast 200                 # closed-loop broadcast throughput
//! target/release/p2pbench --nodes 10 --broadcast 200 --secret        # the same group with a secret
//! target/release/p2pbench --nodes 10 --broadcast 5000 --window 32     # library nodes, 32 in flight each
//! target/release/p2pbench --nodes 10 --broadcast 5000 --rate 2000     # library nodes, open loop
//! ```
//!
//! `--window` and `--rate` run library nodes instead of `chat-cli` (see `bench/p2p_window.rs`).
//!
//! With `--secret`, the run makes a fresh group secret file (`chat-cli secret new`, in a temporary
//! directory removed at the end) and every node joins with `--secret-file` (and a `--key-file` of its
//! own there): Noise on every link, sealed datagrams.
//!
//! With `--broadcast M`, one group of N nodes instead: every node sends M broadcasts, one at a time
//! (`chat-cli` waits for each to be ordered before reading the next line), and the run reports
//! deliveries per second over all nodes and send-to-delivery latency percentiles.

#[path = "../bench/p2p_window.rs"]
mod p2p_window;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::Value;

/// Command-line options.
#[derive(Debug, Parser)]
struct Opts {
    /// Nodes per trial.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Heartbeat interval passed to every node (the failure timeout is four heartbeats).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// The chat-cli binary (default: next to this one).
    #[arg(long)]
    chat_cli: Option<PathBuf>,
    /// First multicast port (each trial uses the next one).
    #[arg(long, default_value_t = 47_800)]
    port: u16,
    /// Instead of failover trials: every node sends this many broadcasts, closed loop.
    #[arg(long)]
    broadcast: Option<usize>,
    /// With `--broadcast`: library nodes (one `p2pbench` process each) keeping up to this many
    /// broadcasts in flight per node, closed loop, instead of `chat-cli` processes (one in flight).
    #[arg(long, conflicts_with = "rate")]
    window: Option<usize>,
    /// With `--broadcast`: library nodes sending this many broadcasts per second each, open loop.
    #[arg(long)]
    rate: Option<u64>,
    /// With `--window` / `--rate`: every node on a current-thread Tokio runtime instead of a
    /// multi-thread one like `chat-cli`'s.
    #[arg(long)]
    single_thread: bool,
    /// Internal: run as one library node of a `--window` / `--rate` run, with this name.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Run the group with a fresh group secret (made for the run with `chat-cli secret new`).
    #[arg(long)]
    secret: bool,
}

/// How every node is started.
struct Setup<'a> {
    bin: &'a PathBuf,
    heartbeat: Option<u64>,
    secret: Option<PathBuf>,
}

/// One node process; killed on drop.
struct Node {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<(Instant, Value)>,
    seen: Vec<(Instant, Value)>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(setup: &Setup<'_>, name: &str, group: &str) -> Result<Node> {
        // Flood control off: the benchmark sends as fast as ordering allows (as against the server).
        let mut args = vec!["--mode", "p2p", "--no-rate-limit", "--json", "--name", name, "--group", group];
        let hb = setup.heartbeat.map(|h| h.to_string());
        if let Some(hb) = &hb {
            args.extend(["--heartbeat-ms", hb.as_str()]);
        }
        let secret = setup.secret.as_ref().map(|p| p.to_string_lossy().into_owned());
        // Each node's key beside the secret, in the benchmark's own directory (never the user's data).
        let key = setup.secret.as_ref().map(|p| p.with_file_name(format!("{name}.key")).to_string_lossy().into_owned());
        if let (Some(secret), Some(key)) = (&secret, &key) {
            args.extend(["--secret-file", secret.as_str(), "--key-file", key.as_str()]);
        }
        let bin = setup.bin;
        let mut child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if tx.send((Instant::now(), v)).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Node { name: name.into(), child, stdin, events, seen: Vec::new() })
    }

    /// Takes the events printed so far.
    fn poll(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    fn say(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The last coordinator this node announced, with when it was printed.
    fn coordinator(&self) -> Option<(Instant, String)> {
        self.seen
            .iter()
            .rev()
            .find(|(_, e)| e["type"] == "coordinator")
            .and_then(|(t, e)| e["name"].as_str().map(|n| (*t, n.to_string())))
    }

    fn texts(&self) -> HashSet<String> {
        self.seen
            .iter()
            .filter(|(_, e)| e["type"] == "message")
            .filter_map(|(_, e)| e["text"].as_str())
            .map(String::from)
            .collect()
    }
}

/// Polls until every node names the same coordinator (other than `not`), or the deadline.
fn agree(nodes: &mut [Node], not: Option<&str>, deadline: Instant) -> Option<String> {
    while Instant::now() < deadline {
        for n in nodes.iter_mut() {
            n.poll();
        }
        let names: Vec<Option<String>> = nodes.iter().map(|n| n.coordinator().map(|(_, c)| c)).collect();
        if let Some(Some(first)) = names.first()
            && names.iter().all(|c| c.as_deref() == Some(first.as_str()))
            && Some(first.as_str()) != not
        {
            return Some(first.clone());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

struct Trial {
    failover: Duration,
    lost: usize,
}

fn trial(opts: &Opts, setup: &Setup<'_>, port: u16) -> Result<Trial> {
    let group = format!("239.255.77.77:{port}");
    let mut nodes = Vec::new();
    for i in 0..opts.nodes {
        nodes.push(Node::start(setup, &format!("n{i}"), &group)?);
        // The first node founds the group after its join timeout; the others join it.
        let settle = if i == 0 { Duration::from_millis(1700) } else { Duration::from_millis(150) };
        std::thread::sleep(settle);
    }
    // Stable agreement: the same coordinator everywhere, still so 300 ms later.
    let first = loop {
        let c = agree(&mut nodes, None, Instant::now() + Duration::from_secs(20)).context("no initial agreement")?;
        std::thread::sleep(Duration::from_millis(300));
        if agree(&mut nodes, None, Instant::now() + Duration::from_millis(10)).as_deref() == Some(c.as_str()) {
            break c;
        }
    };
    let at = nodes.iter().position(|n| n.name == first).context("the coordinator is one of the nodes")?;
    let mut dead = nodes.remove(at);
    let killed = Command::new("kill").args(["-KILL", &dead.child.id().to_string()]).status()?;
    let t0 = Instant::now();
    if !killed.success() {
        bail!("kill failed");
    }
    let _ = dead.child.wait();
    for n in nodes.iter_mut() {
        let name = n.name.clone();
        n.say(&format!("after-kill from {name}"))?;
    }
    let second = agree(&mut nodes, Some(&first), t0 + Duration::from_secs(30)).context("no new coordinator")?;
    let failover = nodes
        .iter()
        .filter_map(|n| {
            n.seen
                .iter()
                .find(|(t, e)| *t >= t0 && e["type"] == "coordinator" && e["name"] == second.as_str())
                .map(|(t, _)| *t - t0)
        })
        .max()
        .context("survivors reported the new coordinator")?;
    // Every survivor's message must reach every survivor.
    let expected: HashSet<String> = nodes.iter().map(|n| format!("after-kill from {}", n.name)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for n in nodes.iter_mut() {
            n.poll();
        }
        if nodes.iter().all(|n| expected.is_subset(&n.texts())) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let lost = nodes.iter().map(|n| expected.difference(&n.texts()).count()).sum();
    Ok(Trial { failover, lost })
}

/// Closed-loop broadcast throughput of one group.
fn broadcast(opts: &Opts, setup: &Setup<'_>, per_node: usize) -> Result<()> {
    let group = format!("239.255.77.77:{}", opts.port);
    let mut nodes = Vec::new();
    for i in 0..opts.nodes {
        nodes.push(Node::start(setup, &format!("n{i}"), &group)?);
        std::thread::sleep(if i == 0 { Duration::from_millis(1700) } else { Duration::from_millis(150) });
    }
    agree(&mut nodes, None, Instant::now() + Duration::from_secs(20)).context("no agreement")?;
    std::thread::sleep(Duration::from_millis(500));
    for n in nodes.iter_mut() {
        n.poll();
        n.seen.clear();
    }
    // Every line is sent only once the previous one was ordered: the pipe holds the rest.
    let start = Instant::now();
    for n in nodes.iter_mut() {
        let name = n.name.clone();
        let mut lines = String::new();
        for k in 0..per_node {
            lines.push_str(&format!("bench {name} {k}\n"));
        }
        let stdin = n.stdin.as_mut().context("stdin")?;
        stdin.write_all(lines.as_bytes())?;
        stdin.flush()?;
    }
    let expected = opts.nodes * per_node * opts.nodes;
    // Latency: in a closed loop a node sends its next message when the previous one is ordered, so
    // the gap between two of its own messages coming back is one send-to-delivery round trip.
    let mut latency = Histogram::<u64>::new(3)?;
    let mut own_last: Vec<Option<Instant>> = vec![None; nodes.len()];
    let mut delivered = 0usize;
    let mut last = start;
    let deadline = start + Duration::from_secs(300);
    while delivered < expected && Instant::now() < deadline {
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Ok((t, e)) = n.events.try_recv() {
                if e["type"] != "message" {
                    continue;
                }
                delivered += 1;
                last = last.max(t);
                if e["from"] == n.name.as_str() {
                    if let Some(prev) = own_last[i] {
                        latency.record((t - prev).as_micros() as u64)?;
                    }
                    own_last[i] = Some(t);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = (last - start).as_secs_f64().max(1e-9);
    println!(
        "RESULT scenario=p2p-broadcast nodes={} secret={} per_node={per_node} deliveries={delivered} expected={expected} deliv_per_s={:.0} round_trip_p50_us={} p99_us={} p999_us={}",
        opts.nodes,
        setup.secret.is_some(),
        delivered as f64 / secs,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999)
    );
    Ok(())
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    let pace = match (opts.window, opts.rate) {
        (Some(w), _) => Some(p2p_window::Pace::Window(w.max(1))),
        (None, Some(r)) => Some(p2p_window::Pace::Rate(r.max(1))),
        (None, None) => None,
    };
    if let (Some(name), Some(pace)) = (&opts.child, pace) {
        return p2p_window::child(name, opts.nodes, opts.port, opts.broadcast.unwrap_or(1), pace, opts.single_thread);
    }
    if let (Some(per_node), Some(pace)) = (opts.broadcast, pace) {
        return p2p_window::run(&std::env::current_exe()?, opts.nodes, opts.port, per_node, pace, opts.single_thread);
    }
    let bin = match &opts.chat_cli {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("chat-cli"),
    };
    if !bin.exists() {
        bail!("{} not found: build it with `cargo build --release -p chat-cli`", bin.display());
    }
    // The secret file lives as long as the run; its directory is removed at the end.
    let dir = tempfile::tempdir()?;
    let secret = if opts.secret {
        let file = dir.path().join("group.secret");
        let made = Command::new(&bin).arg("secret").arg("new").arg(&file).stdout(Stdio::null()).status()?;
        if !made.success() {
            bail!("chat-cli secret new failed");
        }
        Some(file)
    } else {
        None
    };
    let setup = Setup { bin: &bin, heartbeat: opts.heartbeat_ms, secret };
    if let Some(per_node) = opts.broadcast {
        return broadcast(&opts, &setup, per_node);
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let (mut lost, mut failed) = (0usize, 0usize);
    for k in 0..opts.trials {
        match trial(&opts, &setup, opts.port + k as u16) {
            Ok(t) => {
                hist.record(t.failover.as_millis() as u64)?;
                lost += t.lost;
                eprintln!("trial {k}: failover {} ms, lost {}", t.failover.as_millis(), t.lost);
            }
            Err(e) => {
                failed += 1;
                eprintln!("trial {k}: failed: {e:#}");
            }
        }
    }
    println!(
        "RESULT scenario=p2p-failover nodes={} secret={} trials={} failed_trials={failed} heartbeat_ms={} p50_ms={} p99_ms={} max_ms={} lost={lost}",
        opts.nodes,
        setup.secret.is_some(),
        opts.trials,
        opts.heartbeat_ms.unwrap_or(250),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    Ok(())
}
