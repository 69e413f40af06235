//! Connecting to NATS: the connection options (`--cluster-creds`, user and password, token, TLS),
//! the version check (nats-server 2.10 or later), and the stream and the bucket the cluster uses
//! (created if missing, shared if present).

use async_nats::jetstream::{self, kv, stream};
use async_nats::{Client, ConnectOptions};

use super::{ACK_TIMEOUT, ClusterConfig, DUPLICATE_WINDOW};
use crate::ServerError;

/// The oldest nats-server the cluster accepts: 2.9.10 was seen to keep a stale replica after a
/// restart (and then lose acknowledged messages once it led), and it cannot serve the key-value API
/// the way the client needs.
pub const MIN_NATS_VERSION: (u64, u64) = (2, 10);

/// How long connecting to NATS may take before the server refuses to start.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long opening the stream and the bucket is retried: right after the NATS nodes (re)start, the
/// stream may have no leader yet for some seconds.
pub const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// Pause between two attempts at opening the stream or the bucket.
const OPEN_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// A connection to the cluster's NATS servers, with the stream and the bucket in place.
#[derive(Clone)]
pub struct Link {
    /// The connection.
    pub client: Client,
    /// JetStream on it (acknowledgements time out after [`ACK_TIMEOUT`]).
    pub js: jetstream::Context,
    /// The log.
    pub stream: stream::Stream,
    /// The instances' leases (`None` when connected read-only).
    pub leases: Option<kv::Store>,
    /// What was asked for.
    pub config: ClusterConfig,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("urls", &self.config.urls).field("stream", &self.config.stream).finish()
    }
}

/// `major.minor` of a version string such as `2.15.1` or `v2.10.0-beta`; `None` if unreadable.
pub fn parse_version(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim().trim_start_matches('v').split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn cluster_error(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Cluster(format!("{what}: {e}"))
}

/// Connects to NATS (refusing servers older than [`MIN_NATS_VERSION`]) and makes sure the stream and
/// the lease bucket exist. `read_only`: only the stream is needed (`log show --cluster`).
pub async fn connect(config: &ClusterConfig, read_only: bool) -> Result<Link, ServerError> {
    let mut options =
        ConnectOptions::new().name("chat-server").connection_timeout(CONNECT_TIMEOUT).max_reconnects(None::<usize>);
    if let Some(path) = &config.creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| ServerError::Cluster(format!("cannot read the credentials file {}: {e}", path.display())))?;
    }
    if let Some((user, password)) = &config.user {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &config.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &config.client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
    }
    if config.require_tls {
        options = options.require_tls(true);
    }
    let addrs = config
        .urls
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cluster_error("bad --cluster URL", e))?;
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT * 2, options.connect(addrs));
    let client = match connecting.await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(cluster_error(&format!("cannot connect to {}", config.urls.join(",")), e)),
        Err(_) => return Err(ServerError::Cluster(format!("no answer from {}", config.urls.join(",")))),
    };
    let version = client.server_info().version;
    match parse_version(&version) {
        Some(v) if v >= MIN_NATS_VERSION => {}
        _ => return Err(ServerError::NatsTooOld { version }),
    }
    let js = jetstream::ContextBuilder::new().timeout(ACK_TIMEOUT).build(client.clone());
    let deadline = std::time::Instant::now() + OPEN_PATIENCE;
    let stream = loop {
        let opened = js
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.subject()],
                num_replicas: config.replicas,
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await;
        match opened {
            Ok(stream) => break stream,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, stream = %config.stream, "cannot open the stream yet; trying again");
                tokio::time::sleep(OPEN_RETRY).await;
            }
            Err(e) => return Err(cluster_error(&format!("cannot open the stream {}", config.stream), e)),
        }
    };
    let leases = if read_only {
        None
    } else {
        let bucket = kv::Config {
            bucket: config.bucket(),
            history: 1,
            max_age: config.lease,
            num_replicas: config.replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        Some(loop {
            let opened = match js.get_key_value(config.bucket()).await {
                Ok(store) => Ok(store),
                Err(_) => js.create_key_value(bucket.clone()).await,
            };
            match opened {
                Ok(store) => break store,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, bucket = %config.bucket(), "cannot open the bucket yet; trying again");
                    tokio::time::sleep(OPEN_RETRY).await;
                }
                Err(e) => return Err(cluster_error(&format!("cannot open the bucket {}", config.bucket()), e)),
            }
        })
    };
    tracing::info!(urls = %config.urls.join(","), version = %version, stream = %config.stream, "cluster connected");
    Ok(Link { client, js, stream, leases, config: config.clone() })
}
