//! `chat-cli`: run a chat server, join it, or join a peer-to-peer chat, with the same commands.
//!
//! | module     | owns                                                   |
//! |------------|--------------------------------------------------------|
//! | `applies`  | which global flags each subcommand uses (its `--help`; others refused) |
//! | `args`     | command-line flags (clap)                              |
//! | `bench`    | `chat-cli bench`: fan-out load against a running server |
//! | `clock_text` | wall-clock times in human output (`--time-format`)     |
//! | `commands` | the line language (`/msg`, `MSG:user:text`, ...)       |
//! | `config`   | flags to each topology's settings (bad values: exit 2)  |
//! | `group_secret` | `chat-cli secret new` and `secret id`: P2P group secret files |
//! | `p2p_key`  | a P2P node's identity key file (`--key-file`, a default per name): made once, then loaded |
//! | `input`    | standard input of the line mode: the `> ` prompt on a terminal (`--plain`), bounded lines on a pipe |
//! | `oneshot`  | `chat-cli send` and `chat-cli tail`, for scripts          |
//! | `render`   | human output and `--json` events (`chat_server::json`) |
//! | `safe_text`| untrusted text made safe for a terminal                |
//! | `session`  | the chat loop of the line mode and pipes, shared by both topologies |
//! | `signals`  | SIGINT, SIGTERM, SIGHUP: a clean leave                 |
//! | `term`     | what both terminal front ends share: the terminal guard, the input editor, history |
//! | `tui`      | the full-screen client (default on a terminal without `--json`/`--plain`) |
//!
//! The load generator behind `bench` is in this package's library (`src/lib.rs`, crate `chat_cli`):
//! `chat_cli::loadgen`, which the `tests` package reuses.
//!
//! Exit codes: 0 on a clean leave or shutdown; 2 for usage errors (a bad or world-readable
//! `--secret-file` included); 1 with a one-line reason otherwise (server unreachable, name taken,
//! `auth_failed` (a P2P group with another secret, or one needing a secret), a P2P node key file that
//! cannot be used (`--key-file`: readable by others, malformed), connection lost, log verification failed).

mod account;
mod applies;
mod args;
mod bench;
mod clock_text;
mod commands;
mod config;
mod group_secret;
mod input;
mod oneshot;
mod p2p_key;
mod render;
mod safe_text;
mod secrets;
mod session;
mod signals;
mod term;
mod tui;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use args::{Cli, Cmd, LogAction, Mode, ServeArgs};
use chat_core::{Chat, CoreError, UserName};
use chat_server::ServerError;
use chat_server::server::Server;
use render::{Renderer, Stdout};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = applies::parse();
    // A server says what it does (data directory, records recovered, joins and leaves) at info level;
    // clients only warn. RUST_LOG overrides both.
    let default = if matches!(cli.command, Some(Cmd::Serve(_))) { "warn,chat_server=info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(term::guard::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-cli: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-cli: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Do not wait for a thread blocked reading standard input (a pipe left open): exit now.
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}

/// How long the exit waits for background tasks (a blocked read of standard input never ends).
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Cmd::Serve(ref serve)) => {
            if cli.mode == Mode::P2p {
                usage("`serve` is for --mode server; in p2p mode every node serves: just join with --name")
            } else {
                run_server(&cli, serve).await
            }
        }
        Some(Cmd::Bench(ref bench)) => {
            if cli.mode == Mode::P2p {
                return usage("`bench` measures a running server (--mode server)");
            }
            if bench.size < chat_cli::loadgen::STAMP_LEN {
                return usage(&format!("--size must be at least {} bytes", chat_cli::loadgen::STAMP_LEN));
            }
            let complete = bench::run(&cli.server, bench, cli.json).await?;
            Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Some(Cmd::Log { action: LogAction::Show { ref dir, json, ref cluster } }) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if let Some(urls) = &cluster.cluster {
                let config = match config::log_cluster(urls, &cluster.cluster_stream, &cluster.nats) {
                    Ok(config) => config,
                    Err(message) => return usage(&message),
                };
                let report = chat_server::cluster::logview::show(&config, &mut out, json || cli.json)
                    .await
                    .with_context(|| format!("cannot read the cluster's log at {urls}"))?;
                return Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            let Some(dir) = dir else { return usage("log show needs DIR or --cluster URL") };
            let shown = if json || cli.json {
                chat_server::logview::show_json(dir, &mut out)
            } else {
                chat_server::logview::show(dir, &mut out)
            };
            shown.with_context(|| format!("cannot read the log in {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::Send(ref args)) => match user_name(&cli) {
            Ok(Some(name)) => oneshot::send(&cli, args, name).await,
            Ok(None) => usage("--name NAME (or CHAT_NAME) is required"),
            Err(e) => usage(&format!("{e:#}")),
        },
        Some(Cmd::Tail(ref args)) => match user_name(&cli) {
            Ok(Some(name)) => oneshot::tail(&cli, args, name).await,
            Ok(None) => usage("--name NAME (or CHAT_NAME) is required"),
            Err(e) => usage(&format!("{e:#}")),
        },
        Some(Cmd::Log { action: LogAction::Verify { ref dir, ref cluster } }) => {
            if let Some(urls) = &cluster.cluster {
                let config = match config::log_cluster(urls, &cluster.cluster_stream, &cluster.nats) {
                    Ok(config) => config,
                    Err(message) => return usage(&message),
                };
                let report = chat_server::cluster::logview::verify(&config)
                    .await
                    .with_context(|| format!("cannot read the cluster's log at {urls}"))?;
                print!("{report}");
                return Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            let Some(dir) = dir else { return usage("log verify needs DIR or --cluster URL") };
            let report = chat_server::logview::verify(dir)
                .with_context(|| format!("cannot read the log in {}", dir.display()))?;
            println!("{report}");
            Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Some(Cmd::Account { ref action, cluster: Some(ref urls), ref cluster_stream, ref nats, .. }) => {
            let config = match config::log_cluster(urls, cluster_stream, nats) {
                Ok(config) => config,
                Err(message) => return usage(&message),
            };
            account::run_cluster(&cli, action, &config).await
        }
        Some(Cmd::Account { ref action, ref data_dir, .. }) => account::run(&cli, action, data_dir),
        Some(Cmd::Secret { ref action }) => group_secret::run(action),
        Some(Cmd::Join) | None => join(&cli).await,
    }
}

/// A P2P node key file that cannot be used: one line on standard error (and an `error` event with
/// `--json`), exit code 1: the file, not the command line, needs fixing.
fn key_failure(json: bool, message: &str) -> Result<ExitCode> {
    if json {
        Renderer::new(true, false, Box::new(Stdout)).error(chat_core::ErrorCode::AuthFailed, message);
    }
    eprintln!("chat-cli: {message}");
    Ok(ExitCode::FAILURE)
}

/// A usage error: one line on standard error, exit code 2.
fn usage(message: &str) -> Result<ExitCode> {
    eprintln!("chat-cli: {message}");
    Ok(ExitCode::from(2))
}

async fn run_server(cli: &Cli, serve: &ServeArgs) -> Result<ExitCode> {
    let config = match config::server_config(cli, serve) {
        Ok(config) => config,
        Err(message) => return usage(&message),
    };
    let fingerprint = config.tls.as_ref().map(|t| t.fingerprint.to_string());
    let server = Server::bind(config).await.context("cannot start the server")?;
    let addr = server.local_addr()?;
    let text_addr = server.text_addr()?.map(|a| a.to_string());
    let web_addr = server.web_addr()?.map(|a| a.to_string());
    if let Some(fingerprint) = &fingerprint {
        eprintln!("{fingerprint}");
    }
    let mut out = Renderer::new(cli.json, false, Box::new(Stdout));
    out.listening(&addr.to_string(), fingerprint.as_deref(), text_addr.as_deref(), web_addr.as_deref());
    // Run the server as a task on the worker threads rather than on this thread (`block_on`): the owner
    // task and the connection tasks then share workers, and a message crosses no thread boundary that
    // it need not (on one core: none at all).
    tokio::spawn(server.run(shutdown_signal())).await.context("server task failed")?.context("server failed")?;
    out.info("server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The user name: from `--name`, or asked for on a terminal.
fn user_name(cli: &Cli) -> Result<Option<UserName>> {
    let raw = match &cli.name {
        Some(name) => name.clone(),
        None if std::io::stdin().is_terminal() => {
            input::ask("your name: ").context("cannot read the terminal")?.context("no name given")?
        }
        None => return Ok(None),
    };
    match UserName::new(raw) {
        Ok(name) => Ok(Some(name)),
        Err(e) => bail!("{e}"),
    }
}

async fn join(cli: &Cli) -> Result<ExitCode> {
    let name = match user_name(cli) {
        Ok(Some(name)) => name,
        Ok(None) => return usage("--name NAME is required when standard input is not a terminal"),
        // A name that breaks the rules is a usage error (exit 2).
        Err(e) => return usage(&format!("{e:#}")),
    };
    // Bad flag values are usage errors (exit 2), found before anything is started.
    let topology = match cli.mode {
        Mode::P2p => config::p2p_config(cli, name).map(Topology::P2p),
        Mode::Server => config::client_config(cli, name).map(Topology::Server),
    };
    let mut topology = match topology {
        Ok(topology) => topology,
        Err(message) => return usage(&message),
    };
    if let Topology::P2p(config) = &mut topology {
        match p2p_key::node_key(cli, &config.name) {
            Ok(key) => config.key = key,
            Err(message) => return key_failure(cli.json, &message),
        }
    }
    let times = if cli.no_time {
        Ok(clock_text::TimeStyle::none())
    } else {
        clock_text::TimeStyle::with_format(&cli.time_format)
    };
    let times = match times {
        Ok(times) => times,
        Err(message) => return usage(&format!("--time-format: {message}")),
    };
    let mut out = Renderer::new(cli.json, cli.show_clock, Box::new(Stdout));
    out.set_times(times.clone());
    let (chat, rooms) = match connect(topology).await {
        Ok(joined) => joined,
        Err(failure) => {
            if cli.json {
                out.error(failure.code, &failure.message);
            }
            eprintln!("chat-cli: {}", failure.message);
            return Ok(ExitCode::FAILURE);
        }
    };
    let full_screen = !cli.json && !cli.plain && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let ending = if full_screen {
        let server = (cli.mode == Mode::Server).then(|| cli.server.clone());
        tui::run(chat, rooms, tui::Options { times, bell: !cli.no_bell, server }).await
    } else {
        // Listening before anything is shown: from then on a signal leaves cleanly.
        let signals = signals::Signals::new();
        let input = input::start();
        if let Some(sink) = input.sink {
            out.set_sink(sink);
        }
        out.ready(chat.name(), chat.node_id(), &rooms);
        let ending = session::run(chat, &mut out, input.lines, signals).await;
        // The terminal is given back before anything more is printed.
        drop(input.terminal);
        ending
    };
    Ok(match ending {
        session::Ending::Left => ExitCode::SUCCESS,
        session::Ending::Lost(reason) => {
            // Whatever standard output shows, the reason is always on standard error.
            eprintln!("chat-cli: disconnected: {reason}");
            ExitCode::FAILURE
        }
    })
}

/// Why joining failed, for the error event and the exit message.
struct JoinFailure {
    code: chat_core::ErrorCode,
    message: String,
}

/// The settings of the chosen topology.
enum Topology {
    Server(chat_server::client::ClientConfig),
    P2p(chat_p2p::P2pConfig),
}

/// Joins; the chat and the rooms this user is in.
async fn connect(topology: Topology) -> std::result::Result<(Chat, Vec<chat_core::RoomName>), JoinFailure> {
    match topology {
        Topology::Server(config) => match chat_server::client::connect(config).await {
            Ok(transport) => {
                let rooms = transport.rooms_at_login().to_vec();
                Ok((Chat::new(transport), rooms))
            }
            Err(ServerError::Core(CoreError::Rejected { code, message })) => Err(JoinFailure { code, message }),
            Err(e) => Err(JoinFailure { code: e.code(), message: e.to_string() }),
        },
        Topology::P2p(config) => match chat_p2p::join(config).await {
            // A node that rejoins under its name is in that name's rooms again (the group keeps them).
            Ok(transport) => {
                let rooms = transport.rooms_at_join().to_vec();
                Ok((Chat::new(transport), rooms))
            }
            Err(e) => Err(JoinFailure { code: e.code(), message: e.to_string() }),
        },
    }
}
