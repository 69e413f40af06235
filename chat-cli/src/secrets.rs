//! Passwords and tokens from where a user keeps them: a file, the environment, or a prompt that does
//! not echo. A secret is never taken from a command-line argument (other users could read it in the
//! process list).

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, Result, bail};
use chat_server::protocol::Credential;

use crate::args::Cli;

/// Environment variable holding the login password.
pub const PASSWORD_ENV: &str = "CHAT_PASSWORD";
/// Environment variable holding the login token.
pub const TOKEN_ENV: &str = "CHAT_TOKEN";

/// The first line of `path`, without its line break.
fn first_line(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(line)
}

/// The credential to log in with, if the flags ask for one: a token (`--token-file`, `CHAT_TOKEN`) or
/// a password (`--password-file`, `CHAT_PASSWORD`, or `--password` with a prompt on the terminal).
pub fn login_credential(cli: &Cli, name: &str) -> Result<Option<Credential>> {
    if let Some(path) = &cli.token_file {
        return Ok(Some(Credential::Token(first_line(path)?)));
    }
    if let Some(path) = &cli.password_file {
        return Ok(Some(Credential::Password(first_line(path)?)));
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        return Ok(Some(Credential::Token(token)));
    }
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Some(Credential::Password(password)));
    }
    if cli.password {
        if !std::io::stdin().is_terminal() {
            bail!("--password needs a terminal to ask on; use --password-file or {PASSWORD_ENV}");
        }
        let password =
            rpassword::prompt_password(format!("password for {name}: ")).context("cannot read the password")?;
        return Ok(Some(Credential::Password(password)));
    }
    Ok(None)
}

/// A new password for an account: from `--password-file`, from standard input when it is not a
/// terminal (first line), or asked for twice without echo.
pub fn new_password(cli: &Cli, name: &str) -> Result<String> {
    if let Some(path) = &cli.password_file {
        return first_line(path);
    }
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(line);
    }
    let first = rpassword::prompt_password(format!("new password for {name}: ")).context("cannot read the password")?;
    let again = rpassword::prompt_password("again: ").context("cannot read the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}
