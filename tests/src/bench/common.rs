//! What every `fanbench` run against a server shares: the target, its address, the `RESULT` line's
//! labels, TLS to ours, and CPU samples of the server and the generator.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, ensure};
use chat_cli::loadgen::LoadTls;
use chat_server::tls::Trust;
use clap::{Args, ValueEnum};

use super::procfs::cpu_seconds;
use super::record::Record;

/// The server kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The chat server (`chat-cli serve`).
    Ours,
    /// `redis-server`.
    Redis,
    /// `nats-server`.
    Nats,
}

/// Options shared by `bench`, `idle` and `logins`.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Which protocol to speak.
    #[arg(long, value_enum)]
    pub target: Target,
    /// The server's address (loopback only).
    #[arg(long)]
    pub addr: SocketAddr,
    /// The server's process ID, for CPU and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Scenario name written in the `RESULT` line.
    #[arg(long, default_value = "adhoc")]
    pub scenario: String,
    /// Target label written in the `RESULT` line (default: the target's name).
    #[arg(long)]
    pub label: Option<String>,
    /// Bound on the whole run, in seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
    /// Prefix of user names / channels / subjects (default: from this process's ID).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Generator threads (1 = one current-thread runtime, as pinned to one CPU by compare.sh).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print progress to standard error.
    #[arg(long)]
    pub progress: bool,
    /// Ours over TLS, trusting exactly the certificate with this fingerprint (`SHA256:<hex>`, as
    /// `chat-cli serve --tls self-signed` prints it).
    #[arg(long, value_name = "SHA256:HEX", conflicts_with = "ca")]
    pub tls_fingerprint: Option<String>,
    /// Ours over TLS, trusting certificates issued by the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl Common {
    /// Refuses addresses off loopback.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.addr.ip().is_loopback(), "fanbench only drives servers on loopback, not {}", self.addr);
        Ok(())
    }

    /// The prefix of this run's names.
    pub fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| format!("b{}", std::process::id()))
    }

    /// The target's label in the `RESULT` line.
    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| format!("{:?}", self.target).to_lowercase())
    }

    /// The server's process ID, as a `/proc` path component.
    pub fn pid(&self) -> Option<String> {
        self.server_pid.map(|p| p.to_string())
    }

    /// A `RESULT` line with the scenario, the target and `kind`.
    pub fn record(&self, kind: &str) -> Record {
        let mut r = Record::default();
        r.set("scenario", &self.scenario).set("target", self.label()).set("kind", kind);
        r
    }

    /// TLS to our server, if asked for.
    pub fn tls(&self) -> anyhow::Result<Option<LoadTls>> {
        let trust = match (&self.tls_fingerprint, &self.ca) {
            (Some(fingerprint), _) => Trust::Pinned(fingerprint.parse().map_err(|e| anyhow!("{e}"))?),
            (None, Some(ca)) => Trust::Ca(ca.clone()),
            (None, None) => return Ok(None),
        };
        ensure!(self.target == Target::Ours, "TLS is for --target ours");
        Ok(Some(LoadTls::new(trust, self.addr)?))
    }
}

/// CPU seconds of the server and of this process at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuMark {
    /// The server's (`None` without a process ID, or if /proc cannot be read).
    pub server: Option<f64>,
    /// This process's.
    pub generator: Option<f64>,
}

impl CpuMark {
    /// Samples now; `pid` is the server's.
    pub fn now(pid: Option<&str>) -> Self {
        CpuMark { server: pid.and_then(cpu_seconds), generator: cpu_seconds("self") }
    }
}
