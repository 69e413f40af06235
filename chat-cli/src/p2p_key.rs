//! A P2P node's identity key, kept in a file so that it outlives the process (format and rules:
//! `chat_p2p::secure::NodeKey`; written and read with the same code as group secret files).
//!
//! In a group with a secret the coordinator binds a user's name to the key its node joined with,
//! and what is kept for the user while offline is collected only with that key. So that a user who
//! restarts `chat-cli --mode p2p --secret-file S --name alice` gets back what was kept, the key is:
//!
//! | where                                     | when                                                      |
//! |-------------------------------------------|-----------------------------------------------------------|
//! | `--key-file PATH`                         | given                                                     |
//! | `$XDG_DATA_HOME/chat-cli/p2p-keys/NAME.key` | otherwise (NAME in lower case, as names are case-insensitive) |
//! | `$HOME/.local/share/chat-cli/p2p-keys/NAME.key` | without `XDG_DATA_HOME`                             |
//!
//! The file is made on first use (mode 0600, its directories 0700) and only read afterwards; it is
//! never overwritten. A file that others may access, a malformed, truncated or oversized one is
//! refused with its name and the reason (exit 1), never replaced. Without a secret no key is used
//! (the name is the identity) and `--key-file` is refused.

use std::path::{Component, Path, PathBuf};

use chat_core::UserName;
use chat_p2p::secure::NodeKey;
use chat_p2p::secure::private_file::{create_private, read_private};

use crate::args::Cli;

/// The key file's directory under the data directory.
const KEY_DIR: [&str; 2] = ["chat-cli", "p2p-keys"];

/// The key file of `name`: `--key-file`, or the default (see the module documentation); `Err` when
/// there is no data directory to put it in.
pub fn key_path(cli: &Cli, name: &UserName) -> Result<PathBuf, String> {
    if let Some(path) = &cli.key_file {
        return Ok(path.clone());
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .ok_or("no HOME or XDG_DATA_HOME to keep this node's key in: give --key-file PATH")?;
    let file = format!("{}.key", name.as_str().to_lowercase());
    // A valid name has no separator (letters, digits, `_ - .`), so this is one plain file name.
    if Path::new(&file).components().collect::<Vec<_>>() != [Component::Normal(file.as_ref())] {
        return Err(format!("the name {:?} cannot name a key file: give --key-file PATH", name.as_str()));
    }
    Ok(KEY_DIR.iter().fold(data, |dir, part| dir.join(part)).join(file))
}

/// The node key to join with: none without a group secret; otherwise the one in the key file,
/// made first if there is none. `Err` names the file and says what is wrong.
pub fn node_key(cli: &Cli, name: &UserName) -> Result<Option<NodeKey>, String> {
    if cli.secret_file.is_none() {
        return Ok(None);
    }
    let path = key_path(cli, name)?;
    load_or_create(&path).map(Some).map_err(|reason| format!("node key {}: {reason}", path.display()))
}

/// The key in `path`, or a fresh one written there if there is no file.
fn load_or_create(path: &Path) -> Result<NodeKey, String> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => return NodeKey::parse(&read_private(path)?),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| format!("cannot make its directory: {e}"))?;
    }
    let key = NodeKey::generate();
    match create_private(path, &key.to_file_text()) {
        Ok(()) => {
            tracing::info!(file = %path.display(), key = %key.public(), "a new node key");
            Ok(key)
        }
        // Another process of this user made it meanwhile: theirs is the key.
        Err(_) if path.exists() => NodeKey::parse(&read_private(path)?),
        Err(reason) => Err(reason),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_made_once_then_loaded_and_bad_files_are_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("deeper").join("alice.key");
        let made = load_or_create(&path).expect("made");
        assert_eq!(std::fs::metadata(&path).expect("a file").permissions().mode() & 0o777, 0o600);
        let parent = std::fs::metadata(path.parent().expect("a dir")).expect("a dir");
        assert_eq!(parent.permissions().mode() & 0o777, 0o700);
        assert_eq!(load_or_create(&path).expect("loaded"), made, "the same key on every start");

        let text = std::fs::read_to_string(&path).expect("readable");
        let hostile: [(&str, String); 4] = [
            ("truncated", text[..text.len() - 10].to_string()),
            ("malformed", text.replace(|c: char| c.is_ascii_hexdigit(), "z")),
            ("empty", String::new()),
            ("two keys", format!("{text}{}", text.lines().last().expect("a line"))),
        ];
        for (what, bad) in hostile {
            std::fs::write(&path, &bad).expect("written");
            let refused = load_or_create(&path).expect_err(what);
            assert!(refused.contains("key"), "{what}: {refused}");
            assert_eq!(std::fs::read_to_string(&path).expect("kept"), bad, "{what}: never replaced");
        }
        std::fs::write(&path, &text).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(load_or_create(&path).expect_err("world-readable").contains("mode 0644"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(load_or_create(&path).expect("loaded again"), made);
        // A symbolic link to nowhere is not "no file": refused, not written through.
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).expect("a link");
        assert!(load_or_create(&link).is_err());
        assert!(!dir.path().join("nowhere").exists());
    }
}
