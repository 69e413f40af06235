//! `chat-cli account add|remove|list|passwd|token --cluster URLS`: the accounts of a cluster, changed
//! through its shared log (see `accounts`).
//!
//! ```text
//!  read the stream to its end (a Replica: the accounts as every instance has them)
//!   ─► hash the password / draw the token HERE (never in the log, never in a replica)
//!   ─► check the change against that table (a refusal costs no entry)
//!   ─► claim an instance ID (create-only lease key, as an instance does)
//!   ─► publish ONE batch [Account(change), Down { itself }], retried with its message ID until acknowledged
//!   ─► read on up to that batch: its outcome, as every replica decides it (the first registration of
//!      a name in the log wins: a concurrent one is refused there, in the same words)
//! ```
//!
//! The batch's `Down` for its own instance ID retires the ID at once, so no instance takes the tool
//! for a live instance to sweep. The tool reads the whole log (as `log show --cluster` does).

use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use chat_core::UserName;
use tokio::sync::mpsc;

use super::accounts::AccountChange;
use super::entry::{BATCH_VERSION, BatchHeader, BatchWriter, Entry, msg_id};
use super::publisher::unix_ms;
use super::reader::{self, Delivered};
use super::{Applied, ClusterConfig, Lease, Replica, connect, replicated};
use crate::ServerError;
use crate::accounts::{hash_password, new_token};
use crate::router::{Router, RouterConfig, RouterState};

/// How long the tool keeps trying to have its batch acknowledged, and to read the log up to it.
pub const ADMIN_PATIENCE: Duration = Duration::from_secs(30);
/// Pause between two attempts at publishing.
const RETRY: Duration = Duration::from_millis(200);

/// What to do to the accounts (passwords in clear: they are hashed here, before anything is sent).
#[derive(Debug)]
pub enum AccountRequest {
    /// Register a name with a password.
    Add {
        /// The name.
        name: UserName,
        /// The password.
        password: String,
    },
    /// Set a new password.
    Passwd {
        /// The account.
        name: UserName,
        /// The new password.
        password: String,
    },
    /// Delete an account.
    Remove {
        /// The account.
        name: UserName,
    },
    /// Issue a token.
    Token {
        /// The account.
        name: UserName,
    },
    /// List the registered names.
    List,
}

/// What a request did.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountAnswer {
    /// The change is in the log, and every replica applied it.
    Done,
    /// The token issued (shown once; the log has its hash).
    Token(String),
    /// The registered names, sorted.
    Names(Vec<UserName>),
}

/// A replica that follows the stream.
struct Follower {
    rx: mpsc::Receiver<Delivered>,
    reading: tokio::task::JoinHandle<()>,
    replica: Replica,
    router: Router,
}

impl Follower {
    /// Applies batches until the one at `seq` (within [`ADMIN_PATIENCE`]); what applying it did.
    async fn until(&mut self, seq: u64) -> Result<Option<Applied>, ServerError> {
        let deadline = tokio::time::Instant::now() + ADMIN_PATIENCE;
        let mut last = None;
        while self.replica.applied() < seq {
            let Ok(Some(d)) = tokio::time::timeout_at(deadline, self.rx.recv()).await else {
                return Err(ServerError::Cluster(format!("could not read the log up to its batch {seq}")));
            };
            let applied = self.replica.apply(&mut self.router, d.seq, d.time_ms, &d.payload);
            while self.router.poll_output().is_some() {}
            if d.seq == seq {
                last = Some(applied);
            }
        }
        Ok(last)
    }
}

/// Carries out `request` on the accounts of the cluster at `config` (see the module documentation).
pub async fn account(config: &ClusterConfig, request: AccountRequest) -> Result<AccountAnswer, ServerError> {
    let link = connect(config, false).await?;
    let last = link.stream.get_info().await.map_err(|e| ServerError::Cluster(e.to_string()))?.state.last_sequence;
    let (tx, rx) = mpsc::channel(reader::QUEUE);
    let reading = reader::start(link.stream.clone(), config.subject(), 1, tx);
    let router = Router::new(replicated(RouterConfig::default()), RouterState::default());
    let mut follower = Follower { rx, reading, replica: Replica::new(Instant::now()), router };
    let answer = async {
        follower.until(last).await?;
        let (change, token) = match request {
            AccountRequest::List => return Ok(AccountAnswer::Names(follower.replica.accounts().names())),
            AccountRequest::Add { name, password } => {
                (AccountChange::Register { password: hashed(password).await?, name }, None)
            }
            AccountRequest::Passwd { name, password } => {
                (AccountChange::Password { password: hashed(password).await?, name }, None)
            }
            AccountRequest::Remove { name } => (AccountChange::Remove { name }, None),
            AccountRequest::Token { name } => {
                let (token, hash) = new_token();
                (AccountChange::Token { name, token: hash }, Some(token))
            }
        };
        // Refused against the accounts as they are now: nothing is published.
        change.apply(&mut follower.replica.accounts().clone()).map_err(ServerError::Account)?;
        let store = link.leases.clone().ok_or_else(|| ServerError::Cluster("no lease bucket".into()))?;
        let instance = Lease::claim(store.clone(), |i| follower.replica.knows(i)).await?;
        let published = publish(&link.js, &config.subject(), instance, change).await;
        if let Err(e) = store.purge(super::lease::key(instance)).await {
            tracing::warn!(error = %e, "could not remove the tool's lease key (it expires by itself)");
        }
        match follower.until(published?).await? {
            Some(Applied::Batch { accounts, .. }) => match accounts.into_iter().next() {
                Some(Ok(())) => Ok(token.map_or(AccountAnswer::Done, AccountAnswer::Token)),
                Some(Err(refusal)) => Err(ServerError::Account(refusal)),
                None => Err(ServerError::Cluster("the change was not applied".into())),
            },
            _ => Err(ServerError::Cluster("the change's batch was ignored by the replicas".into())),
        }
    }
    .await;
    follower.reading.abort();
    answer
}

/// The argon2id hash of `password` (off the async workers: argon2 takes tens of milliseconds).
async fn hashed(password: String) -> Result<String, ServerError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ServerError::Cluster(format!("hashing failed: {e}")))?
}

/// Publishes `[Account(change), Down { instance }]` as batch 1 of `instance`, retrying with the same
/// message ID until acknowledged (within [`ADMIN_PATIENCE`]); its stream sequence.
async fn publish(
    js: &async_nats::jetstream::Context,
    subject: &str,
    instance: u32,
    change: AccountChange,
) -> Result<u64, ServerError> {
    let header = BatchHeader { version: BATCH_VERSION, instance, number: 1, time_ms: unix_ms() };
    let mut batch = BatchWriter::new(&header);
    batch.push(&Entry::Account(change));
    batch.push(&Entry::Down { instance });
    let payload = batch.finish();
    let id = msg_id(instance, 1);
    let deadline = Instant::now() + ADMIN_PATIENCE;
    loop {
        let message = PublishMessage::build().payload(payload.clone()).message_id(id.as_str());
        let outcome = match js.send_publish(subject.to_string(), message).await {
            Ok(ack) => ack.await.map(|ack| ack.sequence).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(seq) => return Ok(seq),
            Err(e) if Instant::now() >= deadline => {
                return Err(ServerError::Cluster(format!("the log did not take the change: {e}")));
            }
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}
