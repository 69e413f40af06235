//! `chat-cli secret new` and `chat-cli secret id`: P2P group secret files (format and rules: `chat_p2p::secure::GroupSecret`).

use std::process::ExitCode;

use anyhow::Result;
use chat_p2p::secure::GroupSecret;

use crate::args::SecretAction;

/// Runs one `secret` action.
pub fn run(action: &SecretAction) -> Result<ExitCode> {
    match action {
        SecretAction::New { file } => {
            let secret = GroupSecret::create(file)?;
            // The ID on standard output (for a script), the advice on standard error.
            println!("{}", secret.id());
            eprintln!(
                "chat-cli: a new group secret in {} (ID {}): copy it to every member over a channel you trust, \
                 keep it mode 0600, and join with --secret-file {}",
                file.display(),
                secret.id(),
                file.display()
            );
        }
        SecretAction::Id { file } => println!("{}", GroupSecret::load(file)?.id()),
    }
    Ok(ExitCode::SUCCESS)
}
