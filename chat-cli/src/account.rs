//! `chat-cli account add|remove|list|passwd|token`: the server's accounts file, or with `--cluster`
//! the accounts of a cluster (changed through its shared log: `chat_server::cluster::admin`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chat_core::UserName;
use chat_server::accounts::Accounts;
use chat_server::cluster::ClusterConfig;
use chat_server::cluster::admin::{AccountAnswer, AccountRequest, account};

use crate::args::{AccountAction, Cli};
use crate::secrets::new_password;

fn name(raw: &str) -> Result<UserName> {
    UserName::new(raw).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs one account action on the accounts of `dir`.
pub fn run(cli: &Cli, action: &AccountAction, dir: &Path) -> Result<ExitCode> {
    let mut accounts = Accounts::load(dir).with_context(|| format!("cannot read the accounts in {}", dir.display()))?;
    match action {
        AccountAction::Add { name: raw } => {
            let user = name(raw)?;
            let password = new_password(cli, user.as_str())?;
            accounts.add(user.clone(), &password)?;
            accounts.save()?;
            eprintln!("chat-cli: {user} is registered");
        }
        AccountAction::Remove { name: raw } => {
            let user = name(raw)?;
            if !accounts.remove(&user) {
                bail!("there is no account {user}");
            }
            accounts.save()?;
            eprintln!("chat-cli: {user} is no longer registered");
        }
        AccountAction::List => {
            for user in accounts.names() {
                println!("{user}");
            }
        }
        AccountAction::Passwd { name: raw } => {
            let user = name(raw)?;
            if !accounts.is_registered(&user) {
                bail!("there is no account {user}");
            }
            let password = new_password(cli, user.as_str())?;
            accounts.set_password(&user, &password)?;
            accounts.save()?;
            eprintln!("chat-cli: the password of {user} is changed");
        }
        AccountAction::Token { name: raw } => {
            let user = name(raw)?;
            let token = accounts.issue_token(&user)?;
            accounts.save()?;
            // The token on standard output (for a script to store), the advice on standard error.
            println!("{token}");
            eprintln!(
                "chat-cli: a token for {user}: it is shown only now; log in with --token-file FILE or CHAT_TOKEN"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one account action on the accounts of the cluster at `config`: the same words and exit codes
/// as with a data directory.
pub async fn run_cluster(cli: &Cli, action: &AccountAction, config: &ClusterConfig) -> Result<ExitCode> {
    let request = match action {
        AccountAction::Add { name: raw } => {
            let name = name(raw)?;
            let password = new_password(cli, name.as_str())?;
            AccountRequest::Add { name, password }
        }
        AccountAction::Remove { name: raw } => AccountRequest::Remove { name: name(raw)? },
        AccountAction::List => AccountRequest::List,
        AccountAction::Passwd { name: raw } => {
            let name = name(raw)?;
            let password = new_password(cli, name.as_str())?;
            AccountRequest::Passwd { name, password }
        }
        AccountAction::Token { name: raw } => AccountRequest::Token { name: name(raw)? },
    };
    let urls = config.urls.join(",");
    let answer = match account(config, request).await {
        Ok(answer) => answer,
        // A refusal reads as with a data directory ("alice is registered already").
        Err(refusal @ chat_server::ServerError::Account(_)) => return Err(refusal.into()),
        Err(e) => return Err(e).with_context(|| format!("the accounts of the cluster at {urls}")),
    };
    match (action, answer) {
        (_, AccountAnswer::Names(names)) => {
            for user in names {
                println!("{user}");
            }
        }
        (AccountAction::Token { name: raw }, AccountAnswer::Token(token)) => {
            println!("{token}");
            eprintln!("chat-cli: a token for {raw}: it is shown only now; log in with --token-file FILE or CHAT_TOKEN");
        }
        (AccountAction::Add { name: raw }, _) => eprintln!("chat-cli: {raw} is registered"),
        (AccountAction::Remove { name: raw }, _) => eprintln!("chat-cli: {raw} is no longer registered"),
        (AccountAction::Passwd { name: raw }, _) => eprintln!("chat-cli: the password of {raw} is changed"),
        (_, answer) => bail!("unexpected answer {answer:?}"),
    }
    Ok(ExitCode::SUCCESS)
}
