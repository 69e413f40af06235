//! Files that hold a private key: created once with mode 0600 (never overwritten), read back only
//! if nobody else may access them, bounded in size, and their one line of hex parsed strictly.
//!
//! The group secret ([`super::GroupSecret`]) and a node's identity key ([`super::NodeKey`]) are
//! both kept this way; programs that keep a key elsewhere never touch these functions.
//!
//! Errors are the reason alone (the caller names the file and the kind of key).

use std::io::Write;
use std::path::Path;

/// Largest private key file read (a header, a comment or two and a line of hex are far less).
pub const MAX_PRIVATE_FILE: u64 = 4096;

/// The text of the private file at `path`: refused (on Unix) if its group or others may access it
/// (as OpenSSH refuses such a private key), if it is not a regular file, or if it is longer than
/// [`MAX_PRIVATE_FILE`] bytes or not UTF-8.
pub fn read_private(path: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "it is accessible to other users (mode {mode:04o}): run `chmod 600 {}`",
                path.display()
            ));
        }
    }
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    if metadata.len() > MAX_PRIVATE_FILE {
        return Err(format!("{} bytes: too long for a key file", metadata.len()));
    }
    // Read at most the bound even if the file grew meanwhile.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(|e| e.to_string())?, MAX_PRIVATE_FILE + 1),
        &mut bytes,
    )
    .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PRIVATE_FILE {
        return Err("it grew past the size bound while being read".into());
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

/// Writes `text` to a new file at `path`, created with mode 0600 on Unix; an existing file is never
/// overwritten (`Err` then says so). The data is synced before it returns.
pub fn create_private(path: &Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => "it exists already (a key file is never overwritten)".to_string(),
        _ => e.to_string(),
    })?;
    file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())
}

/// The 32 bytes of a key file's text: lines starting with `#` and blank lines are ignored; exactly
/// one other line, 64 hex digits (upper case accepted). `what` names the key in the reasons.
pub fn parse_hex_key(text: &str, what: &str) -> Result<[u8; 32], String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or_else(|| format!("no {what} in it (expected a line of 64 hex digits)"))?;
    if lines.next().is_some() {
        return Err(format!("more than one {what} line (expected exactly one line of 64 hex digits)"));
    }
    if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the {what} line is not 64 hex digits ({} characters)", line.chars().count()));
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_private_bounded_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("k");
        create_private(&path, "x\n").expect("created");
        assert_eq!(std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o600);
        assert_eq!(read_private(&path).as_deref(), Ok("x\n"));
        assert!(create_private(&path, "y\n").expect_err("exists").contains("never overwritten"));
        assert_eq!(read_private(&path).as_deref(), Ok("x\n"));
        for open in [0o640, 0o604, 0o660, 0o700 | 0o007] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).expect("chmod");
            assert!(read_private(&path).expect_err("open").contains("chmod 600"), "{open:o}");
        }
        let big = dir.path().join("big");
        create_private(&big, &"#".repeat(MAX_PRIVATE_FILE as usize + 1)).expect("created");
        assert!(read_private(&big).expect_err("big").contains("too long"));
        let binary = dir.path().join("bin");
        create_private(&binary, "").expect("created");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).expect("written");
        assert!(read_private(&binary).expect_err("binary").contains("UTF-8"));
        assert!(read_private(dir.path()).is_err(), "a directory");
    }
}
