//! `chat-cli account add|remove|list|passwd|token`: the server's accounts file.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chat_core::UserName;
use chat_server::accounts::Accounts;

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
