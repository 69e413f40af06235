//! A 3-node NATS JetStream cluster on loopback for the cluster tests: the pinned nats-server is
//! installed by `tests/nats/install.sh`, the nodes listen on free ports of 127.0.0.1, and every node
//! is stopped (by its process) when the cluster is dropped. Also `serve --cluster` instances.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest wait for the nodes to agree on a JetStream meta leader.
const BOOT: Duration = Duration::from_secs(30);
/// Tries at starting a cluster: the ports are chosen free, but another process may take one before
/// nats-server binds it (the node then exits); the next try takes other ports.
const START_TRIES: usize = 3;

/// The installed nats-server, or why there is none (the test is then skipped, saying so).
pub fn nats_server() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/nats/install.sh");
    let out =
        Command::new("bash").arg(&script).output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_string();
    Ok(PathBuf::from(path))
}

/// Starts a cluster, or prints why the test is skipped and returns `None`.
pub fn cluster_or_skip(test: &str) -> Option<NatsCluster> {
    match nats_server() {
        Ok(bin) => Some(NatsCluster::start(&bin)),
        Err(reason) => {
            println!("skipped {test}: nats-server cannot be installed: {reason}");
            None
        }
    }
}

/// Free TCP ports on 127.0.0.1 (held together while chosen, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// One node: its ports and its process (while running).
struct Node {
    client: u16,
    monitor: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// Three nodes; killed when dropped.
pub struct NatsCluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    /// Stores and configs.
    pub dir: tempfile::TempDir,
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl NatsCluster {
    /// Starts three nodes and waits until they agree on a meta leader (on other ports if a node
    /// exited meanwhile: its port was taken).
    pub fn start(bin: &Path) -> NatsCluster {
        let mut earlier = String::new();
        for _ in 1..START_TRIES {
            let mut cluster = Self::try_start(bin);
            if cluster.meta_leader_within(BOOT) {
                return cluster;
            }
            if !cluster.some_node_exited() {
                panic!("the NATS nodes did not agree on a meta leader within {BOOT:?}\n{}", cluster.report());
            }
            earlier += &format!("a node exited; trying other ports:\n{}", cluster.report());
        }
        let mut cluster = Self::try_start(bin);
        if !cluster.meta_leader_within(BOOT) {
            panic!("the NATS nodes did not agree on a meta leader within {BOOT:?}\n{}{earlier}", cluster.report());
        }
        cluster
    }

    /// Three nodes on ports free a moment ago, started.
    fn try_start(bin: &Path) -> NatsCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports = free_ports(9);
        let mut nodes = Vec::new();
        for i in 0..3 {
            let routes: Vec<String> =
                (0..3).filter(|j| *j != i).map(|j| format!("nats-route://127.0.0.1:{}", ports[3 + j])).collect();
            let config = dir.path().join(format!("n{}.conf", i + 1));
            let text = format!(
                "server_name: n{n}\nlisten: 127.0.0.1:{c}\nhttp: 127.0.0.1:{m}\n\
                 cluster {{\n  name: chat\n  listen: 127.0.0.1:{r}\n  routes: [{routes}]\n}}\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n",
                n = i + 1,
                c = ports[i],
                m = ports[6 + i],
                r = ports[3 + i],
                routes = routes.join(", "),
                store = dir.path().join(format!("n{}", i + 1)).display(),
            );
            std::fs::write(&config, text).expect("write a node's config");
            nodes.push(Node { client: ports[i], monitor: ports[6 + i], config, child: None });
        }
        let mut cluster = NatsCluster { bin: bin.to_path_buf(), nodes, dir };
        for i in 0..3 {
            cluster.restart(i);
        }
        cluster
    }

    /// Whether a node the test did not stop has exited.
    fn some_node_exited(&mut self) -> bool {
        self.nodes.iter_mut().any(|n| n.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))))
    }

    /// `nats://127.0.0.1:PORT,...` of every node.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client)).collect::<Vec<_>>().join(",")
    }

    /// Starts node `i` (0..3) again, with its config and store.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = self.dir.path().join(format!("n{}.log", i + 1));
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.config)
            .arg("-l")
            .arg(log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        node.child = Some(child);
    }

    /// `kill -9` of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM to every node, and wait for them to exit (a clean stop of the whole NATS cluster).
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts every stopped node and waits for a meta leader.
    pub fn start_all(&mut self) {
        for i in 0..3 {
            if self.nodes[i].child.is_none() {
                self.restart(i);
            }
        }
        self.wait_for_meta_leader();
    }

    fn wait_for_meta_leader(&mut self) {
        if !self.meta_leader_within(BOOT) {
            panic!("the NATS nodes did not agree on a meta leader within {BOOT:?}\n{}", self.report());
        }
    }

    /// Whether the three nodes agree on a meta leader within `limit` (gives up early if a node exited).
    fn meta_leader_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.some_node_exited() {
                return false;
            }
            let leaders: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| monitor(n.monitor, "/jsz"))
                .filter_map(|v| v["meta_cluster"]["leader"].as_str().map(String::from))
                .collect();
            if leaders.len() == 3 && leaders.iter().all(|l| *l == leaders[0]) && !leaders[0].is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Each node's state and the last lines of its log (for a failure message): a node that exited
    /// (a port taken by another process meanwhile, say) says why there.
    fn report(&mut self) -> String {
        let mut report = String::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let state = match node.child.as_mut().map(|c| c.try_wait()) {
                None => "stopped by the test".to_string(),
                Some(Ok(None)) => "running".to_string(),
                Some(Ok(Some(status))) => format!("exited: {status}"),
                Some(Err(e)) => format!("unknown: {e}"),
            };
            let log = std::fs::read_to_string(self.dir.path().join(format!("n{}.log", i + 1))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(12)..];
            report += &format!(
                "n{} (client port {}), {state}; its last log lines:\n  {}\n",
                i + 1,
                node.client,
                tail.join("\n  ")
            );
        }
        report
    }

    /// The index (0..3) of the node leading `stream`, as the live nodes report it.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let Some(v) = monitor(node.monitor, "/jsz?streams=true") else { continue };
            for account in v["account_details"].as_array().into_iter().flatten() {
                for s in account["stream_detail"].as_array().into_iter().flatten() {
                    if s["name"] == stream
                        && let Some(leader) = s["cluster"]["leader"].as_str()
                        && let Some(n) = leader.strip_prefix('n').and_then(|n| n.parse::<usize>().ok())
                    {
                        return Some(n - 1);
                    }
                }
            }
        }
        None
    }
}

/// GET `path` from a node's monitoring port, as JSON.
fn monitor(port: u16, path: &str) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let json = body.split_once("\r\n\r\n")?.1;
    serde_json::from_str(json).ok()
}

/// A `chat-cli serve --cluster` process; its standard error is kept (the server's log).
pub struct Instance {
    /// Where clients connect.
    pub addr: String,
    /// Where the web client is served (`--web`), if it is.
    #[allow(dead_code)] // only the web test reads it
    pub web: Option<String>,
    /// Where seed 000's text protocol is served (`--text-listen`), if it is.
    #[allow(dead_code)] // only one test reads it
    pub text: Option<String>,
    child: Child,
    /// Every line it wrote to standard error so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Starts an instance on `listen` (`127.0.0.1:0` for a free port) against `urls`; returns once
    /// it serves (it accepts connections).
    pub fn start(urls: &str, listen: &str, extra: &[&str]) -> Instance {
        let instance = Instance::spawn(urls, listen, extra);
        instance.wait_for_log("serving as one instance");
        instance
    }

    /// Starts an instance as [`Instance::start`] does, but returns as soon as it listens: it may
    /// still be reading the shared log.
    pub fn spawn(urls: &str, listen: &str, extra: &[&str]) -> Instance {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
            .args(["serve", "--listen", listen, "--json", "--no-rate-limit", "--cluster", urls])
            .args(extra)
            .env("RUST_LOG", "warn,chat_server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat-cli starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = match lines.next() {
            Some(Ok(line)) => line,
            _ => panic!("the instance did not start: {:?}", log.lock().expect("log")),
        };
        let event: Value = serde_json::from_str(&first).expect("JSON");
        assert_eq!(event["type"], "listening", "{first}");
        let addr = event["addr"].as_str().expect("addr").to_string();
        let web = event["web_addr"].as_str().map(String::from);
        let text = event["text_addr"].as_str().map(String::from);
        Instance { addr, web, text, child, log }
    }

    /// Waits until a line of the log contains `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + crate::common::WAIT;
        loop {
            if let Some(line) = self.log.lock().expect("log").iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no {needle:?} in the instance's log: {:?}", self.log.lock());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit code. A clean stop publishes everything it queued (its `Down` entry
    /// included) before it exits: its log must not say that the shared log did not take them.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + crate::common::WAIT;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The last lines of its standard error may still be on their way to `log`.
        let done = |log: &[String]| log.iter().any(|l| l.contains("published to the shared log"));
        for _ in 0..50 {
            if done(&self.log.lock().unwrap()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log.lock().unwrap();
        let unpublished = log.iter().find(|l| l.contains("did not take this instance's last entries"));
        assert!(unpublished.is_none(), "a clean stop left entries unpublished: {unpublished:?}");
        code
    }
}
