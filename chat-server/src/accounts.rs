//! Accounts: registered names, their password hashes and their tokens, in `DATA_DIR/accounts`.
//!
//! ```text
//! {"version":1,"accounts":[{"name":"alice","password":"$argon2id$v=19$m=19456,t=2,p=1$…","tokens":["9f86d0…"]}]}
//! ```
//!
//! | what          | stored as                                                         | checked by                      |
//! |---------------|-------------------------------------------------------------------|---------------------------------|
//! | a password    | an argon2id PHC string (salted, OWASP parameters)                 | argon2 verification (~tens of ms) |
//! | a token       | the SHA-256 of the token (tokens are 256 random bits, shown once) | SHA-256, compared in constant time |
//!
//! The file is rewritten atomically (a temporary file with mode 0600, synced, renamed over the old one)
//! by `chat-cli account …`, which may run while the server does: the server reads it again for every
//! login with a credential, so a new account or password takes effect at once.
//!
//! [`Accounts::verify`] answers the same way, after the same work, for an unknown name and for a wrong
//! password: an unknown name is checked against a dummy hash.
//!
//! In cluster mode the accounts are not a file but entries of the shared log: `chat-cli account …
//! --cluster` hashes (`hash_password`, [`new_token`]) before it publishes, and every replica builds an
//! [`Accounts::in_memory`] table from the hashes alone (`add_hashed`, `set_password_hashed`,
//! `add_token_hash`), which check what they are given: the log is read as hostile input too.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chat_core::{NameMap, UserName};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ServerError;
use crate::protocol::Credential;

/// Name of the accounts file inside the data directory.
pub const ACCOUNTS_FILE: &str = "accounts";
/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work per login).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Prefix of every token, so a token is recognisable in a configuration file.
pub const TOKEN_PREFIX: &str = "chat_";
/// Longest password hash accepted from the shared log, in bytes (a PHC string is about 100).
pub const MAX_HASH_LEN: usize = 256;
/// Most memory an accepted password hash may ask of a verification, in KiB (ours use 19 MiB): a
/// hash from the shared log that asks for more is refused, so no entry can make logins expensive.
pub const MAX_HASH_MEMORY_KIB: u32 = 64 * 1024;
/// Most passes an accepted password hash may ask for (ours use 2).
pub const MAX_HASH_PASSES: u32 = 8;
/// Most lanes an accepted password hash may ask for (ours use 1).
pub const MAX_HASH_LANES: u32 = 4;

/// One account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Account {
    name: UserName,
    /// The argon2id PHC string of the password.
    password: String,
    /// SHA-256 (hex) of each token issued.
    #[serde(default)]
    tokens: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    accounts: Vec<Account>,
}

/// The accounts of a data directory (or, in cluster mode, of the shared log: see the module documentation).
#[derive(Debug, Clone)]
pub struct Accounts {
    path: PathBuf,
    accounts: NameMap<Account>,
}

fn argon2() -> Argon2<'static> {
    Argon2::default() // argon2id, m = 19 MiB, t = 2, p = 1
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality that takes the same time whatever the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A hash of nothing anyone knows: what an unknown name's password is checked against.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let salt = SaltString::generate(&mut OsRng);
        argon2().hash_password(&secret, &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

fn refused(reason: impl Into<String>) -> ServerError {
    ServerError::Account(reason.into())
}

impl Accounts {
    /// No accounts, kept in memory only: a cluster's replica fills it from the shared log.
    pub fn in_memory() -> Accounts {
        Accounts { path: PathBuf::new(), accounts: NameMap::default() }
    }

    /// The accounts file of `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(ACCOUNTS_FILE)
    }

    /// Reads the accounts of `dir` (none if the file does not exist).
    pub fn load(dir: &Path) -> Result<Accounts, ServerError> {
        let path = Accounts::path_in(dir);
        let mut accounts = NameMap::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes)
                    .map_err(|e| refused(format!("{} is not an accounts file: {e}", path.display())))?;
                for account in file.accounts {
                    let name = account.name.clone();
                    if accounts.insert(name.clone(), account).is_err() {
                        return Err(refused(format!("{} lists {name} twice", path.display())));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Accounts { path, accounts })
    }

    /// Writes the accounts back, atomically, readable by this user only.
    pub fn save(&self) -> Result<(), ServerError> {
        let mut list: Vec<Account> = self.accounts.iter().map(|(_, a)| a.clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = serde_json::to_vec(&File { version: 1, accounts: list }).map_err(|e| refused(e.to_string()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<UserName> {
        let mut names: Vec<UserName> = self.accounts.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    }

    /// Whether `name` (or the same name in another case or look-alike) is registered.
    pub fn is_registered(&self, name: &UserName) -> bool {
        self.accounts.find(name).is_some()
    }

    /// Registers `name` with `password`.
    pub fn add(&mut self, name: UserName, password: &str) -> Result<(), ServerError> {
        if crate::router::is_reserved(&name) {
            return Err(refused(format!("{name} is reserved for the server's notices")));
        }
        if let Some(taken) = self.accounts.find(&name) {
            return Err(refused(format!("{taken} is registered already")));
        }
        self.add_hashed(name, hash_password(password)?)
    }

    /// Registers `name` with the password hash `phc` (an argon2id PHC string within the bounds
    /// above): the same refusals as [`Accounts::add`], and a hash that is not acceptable.
    pub fn add_hashed(&mut self, name: UserName, phc: String) -> Result<(), ServerError> {
        if crate::router::is_reserved(&name) {
            return Err(refused(format!("{name} is reserved for the server's notices")));
        }
        if let Some(taken) = self.accounts.find(&name) {
            return Err(refused(format!("{taken} is registered already")));
        }
        check_hash(&phc)?;
        let account = Account { name: name.clone(), password: phc, tokens: Vec::new() };
        self.accounts.insert(name, account).map_err(|_| refused("registered already"))
    }

    /// Deletes the account of `name`; false if there is none.
    pub fn remove(&mut self, name: &UserName) -> bool {
        self.accounts.remove(name).is_some()
    }

    /// Sets a new password for `name` (its tokens stay valid).
    pub fn set_password(&mut self, name: &UserName, password: &str) -> Result<(), ServerError> {
        if !self.is_registered(name) {
            return Err(refused(format!("no account {name}")));
        }
        self.set_password_hashed(name, hash_password(password)?)
    }

    /// Sets the password hash `phc` for `name` (checked as by [`Accounts::add_hashed`]).
    pub fn set_password_hashed(&mut self, name: &UserName, phc: String) -> Result<(), ServerError> {
        check_hash(&phc)?;
        let (registered, mut account) =
            self.accounts.remove(name).ok_or_else(|| refused(format!("no account {name}")))?;
        account.password = phc;
        self.accounts.insert(registered, account).map_err(|_| refused("lost the account"))
    }

    /// Issues a new token for `name`: returned once, stored hashed.
    pub fn issue_token(&mut self, name: &UserName) -> Result<String, ServerError> {
        let (token, hashed) = new_token();
        self.add_token_hash(name, hashed)?;
        Ok(token)
    }

    /// Adds a token, given as its SHA-256 in 64 lowercase hex digits, to `name`'s account.
    pub fn add_token_hash(&mut self, name: &UserName, hashed: String) -> Result<(), ServerError> {
        if hashed.len() != 64 || !hashed.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(refused("a token hash is 64 lowercase hex digits"));
        }
        let (registered, mut account) =
            self.accounts.remove(name).ok_or_else(|| refused(format!("no account {name}")))?;
        account.tokens.push(hashed);
        self.accounts.insert(registered, account).map_err(|_| refused("lost the account"))
    }

    /// Whether `credential` proves ownership of `name`; the registered name (display form) if so.
    /// An unknown name costs the same work as a wrong password. Blocking (argon2): call it off the
    /// async runtime's workers.
    pub fn verify(&self, name: &UserName, credential: &Credential) -> Option<UserName> {
        let account = self.accounts.get(name).map(|(_, a)| a);
        let ok = match credential {
            Credential::Password(password) => {
                let stored = account.map_or(dummy_hash(), |a| a.password.as_str());
                let fits = password.len() <= MAX_PASSWORD_LEN;
                let verified = PasswordHash::new(stored)
                    .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
                    .unwrap_or(false);
                fits && verified && account.is_some()
            }
            Credential::Token(token) => {
                let hashed = token_hash(token);
                let matched = account
                    .map(|a| a.tokens.iter().fold(false, |m, t| m | constant_time_eq(t.as_bytes(), hashed.as_bytes())))
                    .unwrap_or(false);
                matched && account.is_some()
            }
        };
        ok.then(|| account.map(|a| a.name.clone())).flatten()
    }
}

/// A new token and its hash (as [`Accounts::add_token_hash`] takes it): the token is shown once.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let hashed = token_hash(&token);
    (token, hashed)
}

/// Whether `phc` is a password hash an account may hold: an argon2id PHC string whose parameters
/// stay within [`MAX_HASH_MEMORY_KIB`], [`MAX_HASH_PASSES`] and [`MAX_HASH_LANES`].
fn check_hash(phc: &str) -> Result<(), ServerError> {
    let bad = || refused("not an acceptable argon2id password hash");
    if phc.len() > MAX_HASH_LEN {
        return Err(bad());
    }
    let parsed = PasswordHash::new(phc).map_err(|_| bad())?;
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() || parsed.hash.is_none() || parsed.salt.is_none() {
        return Err(bad());
    }
    let params = argon2::Params::try_from(&parsed).map_err(|_| bad())?;
    if params.m_cost() > MAX_HASH_MEMORY_KIB || params.t_cost() > MAX_HASH_PASSES || params.p_cost() > MAX_HASH_LANES {
        return Err(bad());
    }
    Ok(())
}

/// Hashes a new password (argon2id, random salt), after checking its length. Blocking (argon2):
/// call it off the async runtime's workers.
pub fn hash_password(password: &str) -> Result<String, ServerError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(refused(format!("a password needs at least {MIN_PASSWORD_LEN} characters")));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(refused(format!("a password has at most {MAX_PASSWORD_LEN} bytes")));
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn accounts_round_trip_through_a_private_file_and_verify_passwords_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut accounts = Accounts::load(dir.path()).unwrap();
        assert!(accounts.names().is_empty());
        accounts.add(n("Alice"), "correct horse").unwrap();
        assert!(accounts.add(n("alice"), "another one").is_err(), "the same name, another case");
        assert!(accounts.add(n("bob"), "short").is_err(), "too short");
        assert!(accounts.add(n("sistema"), "correct horse").is_err(), "the name of the server's notices");
        let token = accounts.issue_token(&n("ALICE")).unwrap();
        accounts.save().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(Accounts::path_in(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let raw = std::fs::read_to_string(Accounts::path_in(dir.path())).unwrap();
        assert!(!raw.contains("correct horse") && !raw.contains(&token), "secrets are stored hashed");

        let accounts = Accounts::load(dir.path()).unwrap();
        assert_eq!(accounts.names(), [n("Alice")]);
        let password = |p: &str| Credential::Password(p.into());
        assert_eq!(accounts.verify(&n("alice"), &password("correct horse")), Some(n("Alice")));
        assert_eq!(accounts.verify(&n("alice"), &password("wrong horse")), None);
        assert_eq!(accounts.verify(&n("carol"), &password("correct horse")), None);
        assert_eq!(accounts.verify(&n("alice"), &Credential::Token(token.clone())), Some(n("Alice")));
        assert_eq!(accounts.verify(&n("alice"), &Credential::Token("chat_nope".into())), None);
        assert_eq!(accounts.verify(&n("carol"), &Credential::Token(token)), None);
    }

    #[test]
    fn passwords_change_and_accounts_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut accounts = Accounts::load(dir.path()).unwrap();
        accounts.add(n("alice"), "first password").unwrap();
        accounts.set_password(&n("alice"), "second password").unwrap();
        assert_eq!(accounts.verify(&n("alice"), &Credential::Password("first password".into())), None);
        assert!(accounts.verify(&n("alice"), &Credential::Password("second password".into())).is_some());
        assert!(accounts.remove(&n("alice")));
        assert!(!accounts.remove(&n("alice")));
        assert!(accounts.set_password(&n("alice"), "third password").is_err());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Accounts::path_in(dir.path()), b"{not json").unwrap();
        assert!(matches!(Accounts::load(dir.path()), Err(ServerError::Account(_))));
    }
}
