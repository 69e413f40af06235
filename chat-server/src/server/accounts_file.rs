//! The shell's side of accounts: notices when `DATA_DIR/accounts` changes (the router gets the new
//! set of registered names) and checks credentials off the owner loop.
//!
//! Checking a password is argon2 work (tens of milliseconds): it runs on the blocking pool, at most
//! [`MAX_VERIFYING`] at once so a storm of login attempts cannot take every thread, and its verdict
//! comes back to the owner as an inbound report like any other.
//!
//! In cluster mode there is no file: the cluster shell hands over a snapshot of its replica's
//! account table ([`AccountsFile::set_table`]) whenever a change of the log altered it, and
//! credentials are checked against the snapshot current when the login came in.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chat_core::UserName;
use tokio::sync::{Semaphore, mpsc};
use tracing::warn;

use super::connection::Inbound;
use crate::accounts::Accounts;
use crate::protocol::Credential;
use crate::router::ConnId;

/// Credentials checked at once.
pub(super) const MAX_VERIFYING: usize = 2;
/// How often the accounts file is looked at for changes.
const RECHECK: Duration = Duration::from_secs(1);

/// Where the accounts live, and what the router was last told about them.
pub(super) struct AccountsFile {
    dir: Option<PathBuf>,
    seen: Option<Option<SystemTime>>,
    checked: Option<Instant>,
    verifying: Arc<Semaphore>,
    /// Cluster mode: the accounts of the shared log (checked instead of a file).
    table: Option<Arc<Accounts>>,
}

impl AccountsFile {
    /// The accounts of `dir` (none without a data directory).
    pub(super) fn new(dir: Option<PathBuf>) -> Self {
        AccountsFile { dir, seen: None, checked: None, verifying: Arc::new(Semaphore::new(MAX_VERIFYING)), table: None }
    }

    /// Cluster mode: from now on, credentials are checked against `table`.
    pub(super) fn set_table(&mut self, table: Arc<Accounts>) {
        self.table = Some(table);
    }

    /// The registered names if the file changed since the last call (at most one look per second,
    /// unless `force`).
    pub(super) fn refresh(&mut self, now: Instant, force: bool) -> Option<Vec<UserName>> {
        let dir = self.dir.as_ref()?;
        if !force && self.checked.is_some_and(|t| now.saturating_duration_since(t) < RECHECK) {
            return None;
        }
        self.checked = Some(now);
        let modified = std::fs::metadata(Accounts::path_in(dir)).and_then(|m| m.modified()).ok();
        if self.seen == Some(modified) {
            return None;
        }
        self.seen = Some(modified);
        match Accounts::load(dir) {
            Ok(accounts) => Some(accounts.names()),
            Err(e) => {
                warn!(error = %e, "cannot read the accounts file: keeping the names known before");
                None
            }
        }
    }

    /// Checks `credential` for `name` on the blocking pool; the verdict comes back on `inbound`.
    pub(super) fn verify(&self, conn: ConnId, name: UserName, credential: Credential, inbound: mpsc::Sender<Inbound>) {
        let (dir, table) = (self.dir.clone(), self.table.clone());
        let verifying = self.verifying.clone();
        tokio::spawn(async move {
            let Ok(_permit) = verifying.acquire_owned().await else { return };
            let checked = tokio::task::spawn_blocking(move || {
                if let Some(table) = table {
                    return table.verify(&name, &credential);
                }
                let accounts = dir.as_deref().map(Accounts::load).transpose();
                match accounts {
                    Ok(Some(accounts)) => accounts.verify(&name, &credential),
                    Ok(None) => None,
                    Err(e) => {
                        warn!(error = %e, "cannot read the accounts file: refusing the login");
                        None
                    }
                }
            })
            .await
            .unwrap_or(None);
            let _ = inbound.send(Inbound::Authenticated { conn, name: checked }).await;
        });
    }
}
