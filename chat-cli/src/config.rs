//! From command-line flags to a topology's settings: every flag value is checked here, and a bad one
//! is a usage error (exit code 2) found before anything starts.

use std::time::Duration;

use chat_core::rate::Rate;
use chat_core::{MAX_BODY_LEN, UserName};
use std::net::SocketAddr;
use std::path::PathBuf;

use chat_server::client::ClientConfig;
use chat_server::cluster::ClusterConfig;
use chat_server::router::{AddressLimits, AuthMode, Limits};
use chat_server::server::ServerConfig;
use chat_server::tls::{KNOWN_SERVERS_FILE, TlsClient, TlsServer, Trust};

use crate::args::{AuthArg, Cli, NatsAccess, ServeArgs};
use crate::secrets::login_credential;

/// The server's settings from `serve`'s flags; `Err` is a usage message.
pub fn server_config(cli: &Cli, serve: &ServeArgs) -> Result<ServerConfig, String> {
    let fsync = serve.fsync.parse().map_err(|e| format!("bad --fsync {:?}: {e}", serve.fsync))?;
    let defaults = ServerConfig::default();
    let limits = if serve.no_rate_limit {
        None
    } else {
        let messages = rate("--rate-limit", &serve.rate_limit, 1)?;
        let bytes = rate("--byte-limit", &serve.byte_limit, MAX_BODY_LEN as u64)?;
        let per_address = if serve.no_addr_rate_limit {
            None
        } else {
            let scaled = AddressLimits::scaled(messages, bytes);
            let messages = match &serve.addr_rate_limit {
                Some(value) => rate("--addr-rate-limit", value, 1)?,
                None => scaled.messages,
            };
            let bytes = match &serve.addr_byte_limit {
                Some(value) => rate("--addr-byte-limit", value, MAX_BODY_LEN as u64)?,
                None => scaled.bytes,
            };
            Some(AddressLimits { messages, bytes })
        };
        Some(Limits { messages, bytes, per_address, ..Limits::default() })
    };
    let listen = cli.listen.unwrap_or(defaults.listen);
    let tls = server_tls(serve, listen)?;
    let auth = match serve.auth {
        AuthArg::Open => AuthMode::Open,
        AuthArg::Accounts => AuthMode::Accounts,
    };
    // In cluster mode the accounts live in the cluster's shared log, not in the data directory.
    if auth == AuthMode::Accounts && serve.no_log && serve.cluster.is_none() {
        return Err("--auth accounts needs the data directory (the accounts live there): drop --no-log".into());
    }
    // Safe by default: only loopback may go without TLS and accounts (as Redis's protected mode).
    if !listen.ip().is_loopback() && !serve.insecure && (tls.is_none() || auth != AuthMode::Accounts) {
        return Err(format!(
            "refusing to listen on {listen} without {}: add --tls self-signed (or --tls-cert/--tls-key) and \
             --auth accounts, or --insecure if this network is trusted",
            match (tls.is_none(), auth != AuthMode::Accounts) {
                (true, true) => "TLS and accounts",
                (true, false) => "TLS",
                _ => "accounts",
            }
        ));
    }
    if let Some(text) = serve.text_listen {
        if auth == AuthMode::Accounts {
            return Err("--text-listen cannot go with --auth accounts: the text protocol carries no password or \
                        token, so nobody could log in over it"
                .into());
        }
        if !text.ip().is_loopback() && !serve.insecure {
            return Err(format!(
                "refusing to serve the text protocol on {text}: it has neither TLS nor accounts; add --insecure if \
                 this network is trusted"
            ));
        }
    }
    if let Some(web) = serve.web
        && !web.ip().is_loopback()
        && !serve.insecure
        && (tls.is_none() || auth != AuthMode::Accounts)
    {
        return Err(format!(
            "refusing to serve the web client on {web} without TLS and accounts: add --tls self-signed (or \
             --tls-cert/--tls-key) and --auth accounts, or --insecure if this network is trusted"
        ));
    }
    for origin in &serve.web_origin {
        check_origin(origin)?;
    }
    Ok(ServerConfig {
        listen,
        data_dir: if serve.no_log { None } else { Some(serve.data_dir.clone()) },
        fsync,
        history: serve.history,
        heartbeat: cli.heartbeat_ms.map(Duration::from_millis).unwrap_or(defaults.heartbeat),
        max_connections: serve.max_connections,
        outbox_capacity: serve.outbox.max(1),
        backlog_bytes: serve.backlog_mib.max(1) * 1024 * 1024,
        login_timeout: Duration::from_millis(serve.login_timeout_ms.max(1)),
        max_pending_per_addr: serve.max_pending_per_addr.max(1),
        limits,
        auth,
        tls,
        grace: Duration::from_millis(serve.grace_ms),
        text_listen: serve.text_listen,
        cluster: cluster_config(serve)?,
        web_listen: serve.web,
        web_origins: serve.web_origin.clone(),
        presence_limit: serve.presence_limit,
    })
}

/// The cluster whose log `log show --cluster` / `log verify --cluster` read (and whose accounts
/// `account … --cluster` changes), reached with `access`.
pub fn log_cluster(urls: &str, stream: &str, access: &NatsAccess) -> Result<ClusterConfig, String> {
    let urls = cluster_urls(urls)?;
    let mut config = ClusterConfig::new(urls);
    config.stream = checked_stream(stream)?;
    nats_access(&mut config, access)?;
    Ok(config)
}

/// `nats://HOST:PORT` (or `tls://`) URLs, comma-separated.
fn cluster_urls(urls: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    if urls.is_empty() {
        return Err("--cluster needs at least one NATS URL (nats://HOST:PORT)".into());
    }
    for url in &urls {
        let rest = url.split_once("://").map_or(
            url.as_str(),
            |(scheme, rest)| {
                if matches!(scheme, "nats" | "tls") { rest } else { "" }
            },
        );
        if rest.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(format!("bad --cluster URL {url:?}: expected nats://HOST:PORT (or tls://HOST:PORT)"));
        }
    }
    Ok(urls)
}

/// A stream name NATS accepts.
fn checked_stream(stream: &str) -> Result<String, String> {
    if stream.is_empty() || !stream.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("bad --cluster-stream {stream:?}: letters, digits, _ and - only"));
    }
    Ok(stream.to_string())
}

/// Cluster mode from `--cluster URL[,URL...]` and the `--cluster-*` flags (`None` without `--cluster`).
fn cluster_config(serve: &ServeArgs) -> Result<Option<ClusterConfig>, String> {
    let Some(urls) = &serve.cluster else {
        let access = &serve.nats;
        let stray = access.cluster_creds.is_some()
            || access.cluster_user.is_some()
            || access.cluster_token_file.is_some()
            || access.cluster_ca.is_some()
            || access.cluster_cert.is_some();
        return if stray { Err("the --cluster-* options go with --cluster URL".into()) } else { Ok(None) };
    };
    let mut config = ClusterConfig::new(cluster_urls(urls)?);
    config.stream = checked_stream(&serve.cluster_stream)?;
    config.replicas = serve.cluster_replicas.clamp(1, 5);
    config.lease = Duration::from_millis(serve.cluster_lease_ms.max(1000));
    nats_access(&mut config, &serve.nats)?;
    Ok(Some(config))
}

/// The NATS credentials and TLS settings of `access`, into `config`.
fn nats_access(config: &mut ClusterConfig, access: &NatsAccess) -> Result<(), String> {
    config.creds = access.cluster_creds.clone();
    if let Some(user) = &access.cluster_user {
        let Some((user, password)) = user.split_once(':') else {
            return Err("--cluster-user needs USER:PASSWORD".into());
        };
        config.user = Some((user.to_string(), password.to_string()));
    }
    if let Some(file) = &access.cluster_token_file {
        let token = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        config.token = Some(token.lines().next().unwrap_or("").trim().to_string());
    }
    config.ca = access.cluster_ca.clone();
    config.client_cert = match (&access.cluster_cert, &access.cluster_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => return Err("--cluster-cert and --cluster-key go together".into()),
    };
    config.require_tls = access.cluster_tls;
    Ok(())
}

/// `--web-origin`: `http://HOST[:PORT]` or `https://HOST[:PORT]`, nothing more (as browsers send it).
fn check_origin(origin: &str) -> Result<(), String> {
    let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) => {
            Ok(())
        }
        _ => Err(format!("bad --web-origin {origin:?}: expected http://HOST[:PORT] or https://HOST[:PORT], no path")),
    }
}

/// The server's TLS certificate from `--tls self-signed` or `--tls-cert`/`--tls-key`.
fn server_tls(serve: &ServeArgs, listen: SocketAddr) -> Result<Option<TlsServer>, String> {
    match (&serve.tls, &serve.tls_cert, &serve.tls_key) {
        (None, None, None) => Ok(None),
        (Some(mode), None, None) if mode == "self-signed" => {
            if serve.no_log {
                return Err("--tls self-signed keeps its certificate in the data directory: drop --no-log".into());
            }
            TlsServer::self_signed(&serve.data_dir, listen.ip()).map(Some).map_err(|e| e.to_string())
        }
        (Some(mode), None, None) => {
            Err(format!("bad --tls {mode:?}: expected self-signed (or --tls-cert and --tls-key)"))
        }
        (None, Some(cert), Some(key)) => TlsServer::from_files(cert, key).map(Some).map_err(|e| e.to_string()),
        _ => Err("use either --tls self-signed or --tls-cert FILE --tls-key FILE".into()),
    }
}

/// How to reach and log in to the server from the client flags.
pub fn client_config(cli: &Cli, name: UserName) -> Result<ClientConfig, String> {
    check_servers(&cli.server)?;
    if cli.key_file.is_some() {
        return Err("--key-file is for --mode p2p (a server knows its users by their accounts)".into());
    }
    let mut config = ClientConfig::new(cli.server.clone(), name);
    if cli.no_reconnect {
        config.reconnect = None;
    }
    let tls_flags = cli.ca.is_some() || cli.tls_fingerprint.is_some();
    if tls_flags && !cli.tls {
        return Err("--ca and --tls-fingerprint go with --tls".into());
    }
    if cli.tls {
        let trust = match (&cli.ca, &cli.tls_fingerprint) {
            (Some(ca), None) => Trust::Ca(ca.clone()),
            (None, Some(fp)) => Trust::Pinned(fp.parse().map_err(|e: chat_server::ServerError| e.to_string())?),
            (None, None) => Trust::FirstUse(cli.known_servers.clone().unwrap_or_else(known_servers_file)),
            (Some(_), Some(_)) => return Err("use --ca or --tls-fingerprint, not both".into()),
        };
        config.tls = Some(TlsClient { trust });
    }
    config.credential = login_credential(cli, config.name.as_str()).map_err(|e| format!("{e:#}"))?;
    Ok(config)
}

/// Checks `--server`: one or more comma-separated `HOST:PORT` (an IP address or a name, a port number).
fn check_servers(servers: &str) -> Result<(), String> {
    let bad = |s: &str, why: &str| Err(format!("bad --server {s:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:7878)"));
    if servers.split(',').all(|s| s.trim().is_empty()) {
        return bad(servers, "no address");
    }
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if server.parse::<SocketAddr>().is_ok() {
            continue;
        }
        match server.rsplit_once(':') {
            None => return bad(server, "no port"),
            Some((host, port)) => {
                if host.is_empty() || host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
                    return bad(server, "no host");
                }
                if port.parse::<u16>().map_or(true, |p| p == 0) {
                    return bad(server, "the port is not a number from 1 to 65535");
                }
            }
        }
    }
    Ok(())
}

/// `$XDG_STATE_HOME/chat-cli/known_servers`, or `~/.local/state/chat-cli/known_servers`.
pub fn known_servers_file() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("chat-cli").join(KNOWN_SERVERS_FILE)
}

/// Maps the p2p flags (`--listen`, `--group`, `--interface`, `--peer`, `--heartbeat-ms`,
/// `--timeout-ms`, `--secret-file`) onto the node's settings; unset flags keep
/// [`chat_p2p::P2pConfig::new`]'s defaults. Safe by default: a non-loopback `--listen` or
/// `--interface` needs a group secret, or `--insecure`.
pub fn p2p_config(cli: &Cli, name: UserName) -> std::result::Result<chat_p2p::P2pConfig, String> {
    let mut config = chat_p2p::P2pConfig::new(name);
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(group) = &cli.group {
        config.group = match (group.parse::<std::net::SocketAddrV4>(), group.parse::<std::net::Ipv4Addr>()) {
            (Ok(addr), _) => addr,
            (_, Ok(ip)) => std::net::SocketAddrV4::new(ip, config.group.port()),
            _ => {
                return Err(format!("bad --group {group:?}: expected a multicast IPv4 address, optionally with :PORT"));
            }
        };
        if !config.group.ip().is_multicast() {
            return Err(format!("bad --group {group:?}: {} is not a multicast address", config.group.ip()));
        }
    }
    if let Some(interface) = &cli.interface {
        config.interface =
            interface.parse().map_err(|_| format!("bad --interface {interface:?}: expected an IPv4 address"))?;
    }
    config.peers = cli.peers.clone();
    config.found = cli.found;
    if let Some(ms) = cli.heartbeat_ms {
        // The failure timeout follows (four heartbeats), unless --timeout-ms says otherwise.
        config = config.with_heartbeat(Duration::from_millis(ms.max(1)));
    }
    if let Some(ms) = cli.timeout_ms {
        config.timeout = Duration::from_millis(ms.max(1));
    }
    if cli.no_rate_limit {
        config.limits = None;
    }
    if let Some(path) = &cli.secret_file {
        config.secret = Some(chat_p2p::secure::GroupSecret::load(path).map_err(|e| e.to_string())?);
    } else if cli.key_file.is_some() {
        // The key file itself is read later ([`crate::p2p_key`]: a bad one is not a usage error).
        return Err("--key-file goes with --secret-file (without a group secret the name is the identity)".into());
    }
    // Only loopback may go without a secret (as `serve` without TLS and accounts).
    let exposed = [config.listen.ip(), std::net::IpAddr::V4(config.interface)].into_iter().find(|ip| !ip.is_loopback());
    if let Some(ip) = exposed
        && config.secret.is_none()
        && !cli.insecure
    {
        return Err(format!(
            "refusing to use {ip} (not loopback) without a group secret: anyone who can reach it could join \
             the group and send as anyone. Add --secret-file FILE (make one with `chat-cli secret new FILE`), \
             or --insecure if this network is trusted"
        ));
    }
    Ok(config)
}

/// Parses `RATE[:BURST]` (the burst defaults to the rate and is at least `min_burst`).
fn rate(flag: &str, value: &str, min_burst: u64) -> Result<Rate, String> {
    let bad = || format!("bad {flag} {value:?}: expected RATE or RATE:BURST, positive whole numbers");
    let (per_second, burst) = match value.split_once(':') {
        Some((r, b)) => (r.trim().parse::<u64>().map_err(|_| bad())?, b.trim().parse::<u64>().map_err(|_| bad())?),
        None => {
            let r = value.trim().parse::<u64>().map_err(|_| bad())?;
            (r, r)
        }
    };
    if per_second == 0 || burst == 0 {
        return Err(bad());
    }
    Ok(Rate { per_second, burst: burst.max(min_burst) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_addresses_need_a_port() {
        for ok in ["127.0.0.1:7878", "localhost:1", "[::1]:7878", "a:1,b:2"] {
            assert!(super::check_servers(ok).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1", "127.0.0.1:", ":7878", "host:port", "h:0", "h:70000", "", ","] {
            assert!(super::check_servers(bad).is_err(), "{bad:?}");
        }
    }

    use super::*;
    use clap::Parser;

    fn p2p(args: &[&str]) -> Result<chat_p2p::P2pConfig, String> {
        let cli = Cli::try_parse_from([&["chat-cli", "--mode", "p2p"], args].concat()).expect("flags parse");
        p2p_config(&cli, UserName::new("alice").expect("a name"))
    }

    #[test]
    fn beyond_loopback_p2p_needs_a_secret_or_insecure() {
        assert!(p2p(&[]).is_ok());
        assert!(p2p(&["--listen", "127.0.0.2:0", "--interface", "127.0.0.1"]).is_ok());
        for exposed in [["--listen", "0.0.0.0:0"], ["--interface", "192.0.2.7"], ["--listen", "[::]:0"]] {
            let refused = p2p(&exposed).expect_err("refused");
            assert!(refused.starts_with("refusing to use") && refused.contains("--secret-file"), "{refused}");
            let mut insecure = exposed.to_vec();
            insecure.push("--insecure");
            assert!(p2p(&insecure).is_ok(), "{insecure:?}");
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("group.secret");
        chat_p2p::secure::GroupSecret::create(&file).expect("created");
        let file = file.to_str().expect("a UTF-8 path");
        let config = p2p(&["--interface", "192.0.2.7", "--secret-file", file]).expect("a secret is enough");
        assert!(config.secret.is_some());
        assert!(p2p(&["--secret-file", "/nonexistent/secret"]).expect_err("missing").contains("group secret"));
    }

    #[test]
    fn web_origins_are_scheme_and_host_only() {
        for good in ["https://chat.example.org", "http://127.0.0.1:8080", "http://[::1]:80"] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in ["chat.example.org", "https://", "https://a/b", "ftp://a", "https://a b", "null"] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_parse_and_bad_ones_are_usage_errors() {
        assert_eq!(rate("--rate-limit", "50:200", 1), Ok(Rate { per_second: 50, burst: 200 }));
        assert_eq!(rate("--rate-limit", "10", 1), Ok(Rate { per_second: 10, burst: 10 }));
        assert_eq!(rate("--byte-limit", "1000:10", 65536), Ok(Rate { per_second: 1000, burst: 65536 }));
        for bad in ["", "x", "0", "5:0", "-1:4", "1:2:3"] {
            assert!(rate("--rate-limit", bad, 1).is_err(), "{bad:?}");
        }
    }
}
