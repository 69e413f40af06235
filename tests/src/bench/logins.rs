//! The cost of a password login: accounts made for a run, argon2id timed alone, and a login storm
//! (clients logging in with passwords over TLS, again and again) that `fanbench` runs alone or
//! beside a fan-out.
//!
//! ```text
//!  storm client c (of K):  connect ─ TLS ─ hello ─ Enter { name_c, password, quiet } ─► server
//!                                                   (argon2id on the server's blocking pool)
//!                          ◄──────────────────────────────────── Welcome   (login time = connect → Welcome)
//!                          ── Leave ─► close; then the next of its names: c, c + K, c + 2K, ... < N
//! ```
//!
//! Client `c` uses only the names `c + jK`, so no two clients ever ask for the same name, and its
//! names come round again only after a whole login of each of the others. Sessions are quiet: the
//! storm measures the password check, not the join notices a login sends to everyone online.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use chat_cli::loadgen::{LoadTls, connect};
use chat_core::UserName;
use chat_server::accounts::Accounts;
use chat_server::protocol::{ClientFrame, Credential, Enter, ServerFrame};
use chat_transport::{FrameReader, Role, encode_frame, handshake};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest time one login may take (connect to `Welcome`) before the storm counts it failed.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest login time recorded, in microseconds (60 s).
const MAX_LOGIN_US: u64 = 60_000_000;

/// The name of storm account `i`.
pub fn account_name(prefix: &str, i: usize) -> anyhow::Result<UserName> {
    UserName::new(format!("{prefix}{i}")).map_err(|e| anyhow::anyhow!("account name: {e}"))
}

/// Registers `count` accounts `{prefix}0 ..` with `password` in `data_dir` (the server reads the
/// file again on every login, so it may be running). Returns how long the hashing took.
pub fn make_accounts(data_dir: &Path, prefix: &str, count: usize, password: &str) -> anyhow::Result<Duration> {
    let mut accounts = Accounts::load(data_dir).context("reading the accounts file")?;
    let start = std::time::Instant::now();
    for i in 0..count {
        let name = account_name(prefix, i)?;
        if !accounts.is_registered(&name) {
            accounts.add(name, password).context("adding an account")?;
        }
    }
    let took = start.elapsed();
    accounts.save().context("writing the accounts file")?;
    Ok(took)
}

/// Times `count` checks of `name`'s `password` with the server's own function ([`Accounts::verify`],
/// argon2id with the server's parameters), one after the other on this thread; the times, sorted.
pub fn time_verify(data_dir: &Path, name: &UserName, password: &str, count: usize) -> anyhow::Result<Vec<Duration>> {
    let accounts = Accounts::load(data_dir).context("reading the accounts file")?;
    let credential = Credential::Password(password.to_string());
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = std::time::Instant::now();
        let ok = accounts.verify(name, &credential).is_some();
        times.push(start.elapsed());
        ensure!(ok, "the password of {name} does not verify: were the accounts made with this password?");
    }
    times.sort();
    Ok(times)
}

/// What a storm does.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// The server (loopback).
    pub addr: std::net::SocketAddr,
    /// TLS to it (a password never goes in plaintext).
    pub tls: LoadTls,
    /// Prefix of the account names (`{prefix}{i}`).
    pub prefix: String,
    /// Accounts made for the storm (at least `clients`).
    pub accounts: usize,
    /// Their password.
    pub password: String,
    /// Clients logging in at once (K).
    pub clients: usize,
}

/// What a storm did.
#[derive(Debug)]
pub struct StormReport {
    /// Logins that got their `Welcome`.
    pub logins: u64,
    /// Logins refused or failed (with the first reason seen).
    pub failures: u64,
    /// The first failure's reason.
    pub first_error: Option<String>,
    /// Login times (connect to `Welcome`), microseconds.
    pub login_us: Histogram<u64>,
    /// From the start signal until the last login is over.
    pub elapsed: Duration,
}

/// Runs a storm: waits until `run` is `true`, then `clients` clients log in again and again until it
/// is `false` again (or it is dropped), each finishing the login it is in; every login is bounded by
/// [`LOGIN_TIMEOUT`]. The storm's time runs until its last login is over.
pub async fn storm(config: StormConfig, mut run: watch::Receiver<bool>) -> anyhow::Result<StormReport> {
    ensure!(config.clients >= 1 && config.accounts >= config.clients, "a storm needs 1 <= clients <= accounts");
    if run.wait_for(|r| *r).await.is_err() {
        bail!("the storm was never started");
    }
    let start = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let config = Arc::new(config);
    let mut tasks = Vec::with_capacity(config.clients);
    for c in 0..config.clients {
        let (config, failures, run) = (config.clone(), failures.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Histogram::<u64>::new_with_bounds(1, MAX_LOGIN_US, 3).expect("histogram bounds");
            let mut first_error = None;
            let mut i = c;
            // A login under way when the storm stops is finished (and left), not broken off: a session
            // broken off keeps its name taken for a while and the next storm would be refused it.
            while *run.borrow() {
                let name = account_name(&config.prefix, i)?;
                i = if i + config.clients < config.accounts { i + config.clients } else { c };
                let began = Instant::now();
                match tokio::time::timeout(LOGIN_TIMEOUT, login_once(&config, name)).await {
                    Ok(Ok(())) => times.saturating_record((began.elapsed().as_micros() as u64).clamp(1, MAX_LOGIN_US)),
                    Ok(Err(e)) => {
                        failures.fetch_add(1, Ordering::AcqRel);
                        first_error.get_or_insert(format!("{e:#}"));
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::AcqRel);
                        first_error.get_or_insert("a login took longer than 30 s".to_string());
                    }
                }
            }
            anyhow::Ok((times, first_error))
        }));
    }
    let mut login_us = Histogram::<u64>::new_with_bounds(1, MAX_LOGIN_US, 3)?;
    let mut first_error = None;
    for task in tasks {
        let (times, error) = task.await.context("a storm client")??;
        login_us.add(&times)?;
        first_error = first_error.or(error);
    }
    Ok(StormReport {
        logins: login_us.len(),
        failures: failures.load(Ordering::Acquire),
        first_error,
        login_us,
        elapsed: start.elapsed(),
    })
}

/// One login as `name` with the password, over TLS, until `Welcome`; then `Leave`.
async fn login_once(config: &StormConfig, name: UserName) -> anyhow::Result<()> {
    let mut stream = connect(config.addr, Some(&config.tls)).await.context("connect")?;
    handshake(&mut stream, Role::Client).await.context("chat handshake")?;
    let credential = Some(Credential::Password(config.password.clone()));
    let enter = ClientFrame::Enter(Enter { name, credential, resume: None, quiet: true });
    stream.write_all(&encode_frame(&enter)?).await?;
    stream.flush().await?;
    let answer = {
        let mut reader: FrameReader<_, ServerFrame> = FrameReader::new(&mut stream);
        loop {
            match reader.read_frame().await? {
                Some(ServerFrame::Welcome { .. }) => break Ok(()),
                Some(ServerFrame::Refused { code, message }) => {
                    break Err(anyhow::anyhow!("refused: {code} {message}"));
                }
                Some(_) => {}
                None => break Err(anyhow::anyhow!("the server closed the connection")),
            }
        }
    };
    answer?;
    stream.write_all(&encode_frame(&ClientFrame::Leave)?).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_server::router::AuthMode;
    use chat_server::server::{Server, ServerConfig};
    use chat_server::tls::{TlsServer, Trust};

    /// Storms against an in-process TLS server with `--auth accounts`: the right password logs in
    /// again and again, a wrong one is refused with `auth_failed`, and both stop when told.
    #[tokio::test]
    async fn a_storm_logs_in_with_the_password_and_a_wrong_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        make_accounts(dir.path(), "storm", 2, "right password").unwrap();
        let tls = TlsServer::self_signed(dir.path(), [127, 0, 0, 1].into()).unwrap();
        let trust = Trust::Pinned(tls.fingerprint);
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.path().to_path_buf()),
            tls: Some(tls),
            auth: AuthMode::Accounts,
            ..ServerConfig::default()
        };
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let tls = LoadTls::new(trust, addr).unwrap();
        for (password, fails) in [("right password", false), ("wrong password", true)] {
            let config = StormConfig {
                addr,
                tls: tls.clone(),
                prefix: "storm".into(),
                accounts: 2,
                password: password.into(),
                clients: 2,
            };
            let (run, wait) = watch::channel(true);
            let storm = tokio::spawn(storm(config, wait));
            // Unoptimized argon2id takes a few hundred milliseconds per check here.
            tokio::time::sleep(Duration::from_secs(3)).await;
            run.send_replace(false);
            let report = tokio::time::timeout(Duration::from_secs(10), storm).await.unwrap().unwrap().unwrap();
            if fails {
                assert_eq!(report.logins, 0, "{report:?}");
                assert!(report.failures >= 1, "{report:?}");
                assert!(report.first_error.as_deref().is_some_and(|e| e.contains("auth_failed")), "{report:?}");
            } else {
                assert!(report.logins >= 1 && report.failures == 0, "{report:?}");
                assert_eq!(report.login_us.len(), report.logins);
            }
        }
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_storm_needs_as_many_accounts_as_clients() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsServer::self_signed(dir.path(), [127, 0, 0, 1].into()).unwrap();
        let addr = "127.0.0.1:1".parse().unwrap();
        let tls = LoadTls::new(Trust::Pinned(tls.fingerprint), addr).unwrap();
        let config = StormConfig { addr, tls, prefix: "s".into(), accounts: 1, password: "p".into(), clients: 2 };
        let (_run, wait) = watch::channel(true);
        assert!(storm(config, wait).await.is_err());
    }
}
