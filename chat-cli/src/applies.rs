//! Which of the global flags apply to which subcommand.
//!
//! The flags of joining a chat (`--name`, `--server`, `--listen`, the P2P and TLS flags, ...) are global, so
//! `chat-cli --name alice send hi` and `chat-cli send --name alice hi` both work. Not all of them mean anything
//! to every subcommand: `chat-cli send --help` lists only the ones `send` uses, and a flag given to a subcommand
//! it does not apply to is refused (exit 2) instead of being silently ignored.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::args::{Cli, Cmd, SendArgs, TailArgs};

/// The flags of a one-shot's session: a connection to a server, or (`--mode p2p`) a transient member of a
/// group (it does not found one: no `--found`).
const CONNECTION: &[&str] = &[
    "mode",
    "json",
    "name",
    "server",
    "ca",
    "tls_fingerprint",
    "known_servers",
    "password",
    "password_file",
    "token_file",
    "listen",
    "heartbeat_ms",
    "timeout_ms",
    "group",
    "interface",
    "peers",
    "secret_file",
    "key_file",
];

/// What `tail` adds to a one-shot's session: how message times are shown.
const TIMES: &[&str] = &["show_clock", "time_format", "no_time"];

/// For each subcommand (by name), the global flags (by id) it uses, as groups; the default command
/// (`join`) uses them all. Nested subcommands (`log show`) use their parent's.
const APPLIES: &[(&str, &[&[&str]])] = &[
    ("serve", &[&["mode", "json", "listen", "heartbeat_ms"]]),
    ("send", &[CONNECTION]),
    ("tail", &[CONNECTION, TIMES]),
    ("bench", &[&["mode", "json", "server"]]),
    ("log", &[&["json"]]),
    ("secret", &[]),
    ("account", &[&["password_file"]]),
];

/// Whether a subcommand with these flag groups (its entry of [`APPLIES`]) uses the global flag `id`.
fn uses(groups: &[&[&str]], id: &str) -> bool {
    groups.iter().any(|g| g.contains(&id))
}

/// Parses the command line (exits with clap's usage error, code 2, on a bad one).
pub fn parse() -> Cli {
    let cmd = command();
    let matches = cmd.clone().get_matches();
    if let Some(refused) = misplaced(&cmd, &matches) {
        let mut built = cmd.clone();
        built.build();
        let name = matches.subcommand_name().unwrap_or_default();
        let mut sub = built.find_subcommand(name).cloned().unwrap_or(built);
        sub.error(clap::error::ErrorKind::ArgumentConflict, refused).exit();
    }
    normalized(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// `send --tls` and `tail --tls` are the client's `--tls` (a global `--tls` cannot be: `serve --tls`
/// takes a value).
fn normalized(mut cli: Cli) -> Cli {
    if let Some(Cmd::Send(SendArgs { tls: true, .. }) | Cmd::Tail(TailArgs { tls: true, .. })) = cli.command {
        cli.tls = true;
    }
    cli
}

/// The command with, in each subcommand's help, only the global flags it uses: the others get hidden
/// copies in the subcommand (so clap does not propagate visible ones) and still parse, to be refused.
pub fn command() -> Command {
    let mut cmd = Cli::command();
    let globals: Vec<Arg> = cmd.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    for (sub, used) in APPLIES {
        let unused: Vec<Arg> =
            globals.iter().filter(|a| !uses(used, a.get_id().as_str())).map(|a| a.clone().hide(true)).collect();
        cmd = cmd.mut_subcommand(*sub, |c| hide(c, &unused));
    }
    cmd
}

/// Why the command line is refused, when a subcommand was given a global flag it does not use (given
/// before or after it: clap hands global values down to the innermost subcommand).
pub fn misplaced(cmd: &Command, matches: &ArgMatches) -> Option<String> {
    let (sub, _) = matches.subcommand()?;
    let used = APPLIES.iter().find(|(name, _)| *name == sub)?.1;
    let (mut inner, mut inner_matches) = (cmd, matches);
    while let Some((name, m)) = inner_matches.subcommand() {
        inner = inner.find_subcommand(name)?;
        inner_matches = m;
    }
    // Only the hidden global copies: a subcommand's own argument may share an id (`account add NAME`).
    let copy = |id: &str| inner.get_arguments().any(|a| a.get_id() == id && a.is_global_set() && a.is_hide_set());
    global_ids(cmd)
        .into_iter()
        .filter(|id| !uses(used, id.as_str()) && copy(id))
        .find(|id| inner_matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|id| {
            let long = cmd.get_arguments().find(|a| a.get_id() == id.as_str()).and_then(|a| a.get_long());
            format!("--{} does not apply to `chat-cli {sub}`", long.unwrap_or(&id))
        })
}

/// The ids of the top-level command's global flags.
fn global_ids(cmd: &Command) -> Vec<String> {
    cmd.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().to_string()).collect()
}

/// Adds these (hidden) flags to `cmd` and its subcommands, unless they have flags of the same id.
fn hide(mut cmd: Command, hidden: &[Arg]) -> Command {
    for arg in hidden {
        if !cmd.get_arguments().any(|a| a.get_id() == arg.get_id()) {
            cmd = cmd.arg(arg.clone());
        }
    }
    let subs: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, |c| hide(c, hidden));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help text of a subcommand.
    fn help(path: &[&str]) -> String {
        let mut cmd = command();
        cmd.build();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).expect("subcommand");
        }
        sub.render_long_help().to_string()
    }

    fn refusal(args: &[&str]) -> Option<String> {
        let cmd = command();
        let matches = cmd.clone().try_get_matches_from(args).expect("parses");
        misplaced(&cmd, &matches)
    }

    #[test]
    fn each_subcommands_help_lists_only_the_flags_it_uses() {
        let send = help(&["send"]);
        assert!(send.contains("--server") && send.contains("--name") && send.contains("--to"), "{send}");
        assert!(send.contains("--peer") && send.contains("--group"), "P2P one-shots: {send}");
        assert!(!send.contains("--found") && !send.contains("--plain") && !send.contains("--data-dir"), "{send}");
        let serve = help(&["serve"]);
        assert!(serve.contains("--listen") && serve.contains("--data-dir"), "{serve}");
        assert!(!serve.contains("--name") && !serve.contains("--secret-file"), "{serve}");
        let show = help(&["log", "show"]);
        assert!(show.contains("--json") && !show.contains("--server") && !show.contains("--name"), "{show}");
        let new = help(&["secret", "new"]);
        assert!(!new.contains("--server") && !new.contains("--json"), "{new}");
        let joined = command().render_long_help().to_string();
        assert!(joined.contains("--listen") && joined.contains("--peer") && joined.contains("--name"), "{joined}");
    }

    #[test]
    fn tls_may_follow_send_and_tail() {
        for args in [
            ["chat-cli", "send", "--tls", "hi"],
            ["chat-cli", "--tls", "send", "hi"],
            ["chat-cli", "tail", "--tls", "--json"],
        ] {
            let cli = normalized(Cli::from_arg_matches(&command().try_get_matches_from(args).unwrap()).unwrap());
            assert!(cli.tls, "{args:?}");
        }
        let plain = normalized(
            Cli::from_arg_matches(&command().try_get_matches_from(["chat-cli", "send", "hi"]).unwrap()).unwrap(),
        );
        assert!(!plain.tls);
    }

    #[test]
    fn a_flag_a_subcommand_does_not_use_is_refused_wherever_it_is_given() {
        assert_eq!(
            refusal(&["chat-cli", "send", "--found", "hi"]).as_deref(),
            Some("--found does not apply to `chat-cli send`")
        );
        assert_eq!(
            refusal(&["chat-cli", "--peer", "127.0.0.1:1", "serve"]).as_deref(),
            Some("--peer does not apply to `chat-cli serve`")
        );
        assert_eq!(
            refusal(&["chat-cli", "log", "show", "d", "--server", "x:1"]).as_deref(),
            Some("--server does not apply to `chat-cli log`")
        );
        assert_eq!(refusal(&["chat-cli", "--name", "alice", "send", "--ca", "x.pem", "hi"]), None);
        assert_eq!(refusal(&["chat-cli", "--name", "alice", "--listen", "127.0.0.1:1"]), None);
        assert_eq!(refusal(&["chat-cli", "--json", "log", "show", "d"]), None);
        assert_eq!(refusal(&["chat-cli", "account", "add", "alice", "--data-dir", "d"]), None);
        assert_eq!(
            refusal(&["chat-cli", "account", "add", "alice", "--server", "x:1"]).as_deref(),
            Some("--server does not apply to `chat-cli account`")
        );
    }
}
