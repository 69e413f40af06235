//! The `fanbench` commands about password logins (`accounts`, `argon2`, `logins`) and the storm
//! options of `bench`; the work itself is [`super::logins`]'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chat_cli::loadgen::LoadTls;
use clap::Args;
use tokio::sync::watch;

use super::common::{Common, CpuMark};
use super::logins::{self, StormConfig, StormReport};
use super::record::Record;

/// The accounts of a login storm.
#[derive(Debug, Clone, Args)]
pub struct StormAccounts {
    /// Account names are this prefix and a number (`login0`, `login1`, ...).
    #[arg(long, default_value = "login")]
    pub accounts_prefix: String,
    /// Accounts to make or use (each storm client logs in under its own share of them).
    #[arg(long, default_value_t = 64)]
    pub accounts: usize,
    /// Their password, from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl StormAccounts {
    /// The password, from the first line of `--password-file`.
    fn password(&self) -> anyhow::Result<String> {
        let Some(file) = &self.password_file else { bail!("the accounts' password: --password-file FILE") };
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        Ok(text.lines().next().unwrap_or_default().to_string())
    }

    /// A storm of `clients` clients over these accounts.
    pub fn storm(&self, addr: SocketAddr, tls: LoadTls, clients: usize) -> anyhow::Result<StormConfig> {
        Ok(StormConfig {
            addr,
            tls,
            prefix: self.accounts_prefix.clone(),
            accounts: self.accounts,
            password: self.password()?,
            clients,
        })
    }
}

/// `accounts` options.
#[derive(Debug, Clone, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    storm: StormAccounts,
    /// The server's data directory.
    #[arg(long)]
    data_dir: PathBuf,
}

/// `argon2` options.
#[derive(Debug, Clone, Args)]
pub struct Argon2Args {
    #[command(flatten)]
    storm: StormAccounts,
    /// The server's data directory (accounts made by `fanbench accounts`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Checks to time.
    #[arg(long, default_value_t = 30)]
    count: usize,
}

/// `logins` options.
#[derive(Debug, Clone, Args)]
pub struct LoginsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    storm: StormAccounts,
    /// Clients logging in at once.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long the storm lasts, in seconds.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

/// `accounts`: registers the accounts; tells how long the hashing took.
pub fn accounts_cmd(args: &AccountsArgs) -> anyhow::Result<()> {
    let (prefix, count) = (&args.storm.accounts_prefix, args.storm.accounts);
    let took = logins::make_accounts(&args.data_dir, prefix, count, &args.storm.password()?)?;
    eprintln!("{count} accounts {prefix}0.. in {} ({took:.2?} of hashing)", args.data_dir.display());
    Ok(())
}

/// `argon2`: the server's password check, timed.
pub fn argon2_cmd(args: &Argon2Args) -> anyhow::Result<Record> {
    let name = logins::account_name(&args.storm.accounts_prefix, 0)?;
    let times = logins::time_verify(&args.data_dir, &name, &args.storm.password()?, args.count.max(1))?;
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let mut r = Record::default();
    r.set("scenario", "argon2").set("target", "server").set("kind", "argon2").set("count", times.len());
    r.set("verify_min_ms", ms(times[0]))
        .set("verify_p50_ms", ms(times[times.len() / 2]))
        .set("verify_max_ms", ms(times[times.len() - 1]))
        .set("ok", 1);
    Ok(r)
}

/// `logins`: a storm alone, for `secs`.
pub async fn logins_cmd(args: &LoginsArgs) -> anyhow::Result<Record> {
    let c = &args.common;
    c.check()?;
    let Some(tls) = c.tls()? else { bail!("logins send passwords: they need TLS (--tls-fingerprint or --ca)") };
    let (run, wait) = watch::channel(true);
    let storm = tokio::spawn(logins::storm(args.storm.storm(c.addr, tls, args.clients)?, wait));
    let start = CpuMark::now(c.pid().as_deref());
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    run.send_replace(false);
    let end = CpuMark::now(c.pid().as_deref());
    let report = storm.await.context("the storm")??;
    let mut r = c.record("logins");
    r.set("storm_clients", args.clients).set("secs", args.secs);
    storm_fields(&mut r, &report);
    if let (Some(a), Some(b)) = (start.server, end.server) {
        let per_login = (b - a) / report.logins.max(1) as f64;
        r.set("server_cpu_s", format!("{:.2}", b - a))
            .set("server_cpu_ms_per_login", format!("{:.1}", per_login * 1e3));
    }
    r.set("ok", u8::from(report.failures == 0 && report.logins > 0)).set("err", report.first_error.unwrap_or_default());
    Ok(r)
}

/// A storm's figures in a `RESULT` line.
pub fn storm_fields(r: &mut Record, storm: &StormReport) {
    r.set("logins", storm.logins)
        .set("login_failures", storm.failures)
        .set("logins_per_s", format!("{:.1}", storm.logins as f64 / storm.elapsed.as_secs_f64().max(1e-9)))
        .set("login_p50_us", storm.login_us.value_at_quantile(0.5))
        .set("login_p99_us", storm.login_us.value_at_quantile(0.99))
        .set("login_max_us", storm.login_us.max());
}
