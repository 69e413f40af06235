//! Accounts in cluster mode: the changes the shared log carries, and how every replica applies them
//! to its table (an [`Accounts::in_memory`]), so every instance holds the same accounts.
//!
//! | change     | carries                              | applied (in log order; the first entry wins)                   |
//! |------------|--------------------------------------|----------------------------------------------------------------|
//! | `Register` | the name, the password's argon2id PHC string | registered, unless the name (any case, look-alikes) is registered already or reserved |
//! | `Password` | the name, the new PHC string         | the password replaced (tokens stay valid), if the account exists |
//! | `Remove`   | the name                             | the account deleted, if it exists                              |
//! | `Token`    | the name, the token's SHA-256 (hex)  | the token added, if the account exists                         |
//!
//! **No secret enters the log**: `chat-cli account … --cluster` hashes the password (argon2id, a
//! random salt) or draws the token *before* it publishes, and replicas never hash: applying a
//! change is a map update. A hash is checked on apply (argon2id, bounded parameters: see
//! [`crate::accounts::MAX_HASH_MEMORY_KIB`]), so a hostile entry cannot make logins expensive; a
//! change refused on apply is refused the same way by every replica, and the tool that published it
//! reads the refusal back from the log (see `admin`). A change that registers or removes a name also
//! tells the replica's router the new set of registered names (`Input::Registered`): a plain login
//! under a registered name is refused (`name_taken`), messages to account holders wait while they are
//! offline, as on a single server.

use chat_core::UserName;
use serde::{Deserialize, Serialize};

use crate::accounts::Accounts;

/// One change of the accounts, as the shared log carries it (variants only ever appended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountChange {
    /// Register a name.
    Register {
        /// The name.
        name: UserName,
        /// The password's argon2id PHC string (salted): never the password.
        password: String,
    },
    /// Set a new password.
    Password {
        /// The account.
        name: UserName,
        /// The new password's argon2id PHC string.
        password: String,
    },
    /// Delete an account.
    Remove {
        /// The account.
        name: UserName,
    },
    /// Add a token to an account.
    Token {
        /// The account.
        name: UserName,
        /// SHA-256 of the token, 64 lowercase hex digits: never the token.
        token: String,
    },
}

impl AccountChange {
    /// The account it changes.
    pub fn name(&self) -> &UserName {
        match self {
            AccountChange::Register { name, .. }
            | AccountChange::Password { name, .. }
            | AccountChange::Remove { name }
            | AccountChange::Token { name, .. } => name,
        }
    }

    /// Whether it changes the set of registered names (not only an account's secrets).
    pub fn changes_names(&self) -> bool {
        matches!(self, AccountChange::Register { .. } | AccountChange::Remove { .. })
    }

    /// Applies it to `accounts`; the refusal (the same words as a single server's `chat-cli account`)
    /// if it cannot be. Deterministic: the same table and change give the same outcome everywhere.
    pub fn apply(&self, accounts: &mut Accounts) -> Result<(), String> {
        // Names from the log are checked like names from the wire.
        let name = UserName::new(self.name().as_str()).map_err(|e| e.to_string())?;
        let done = match self {
            AccountChange::Register { password, .. } => accounts.add_hashed(name, password.clone()),
            AccountChange::Password { password, .. } => accounts.set_password_hashed(&name, password.clone()),
            AccountChange::Remove { .. } => match accounts.remove(&name) {
                true => Ok(()),
                false => return Err(format!("there is no account {name}")),
            },
            AccountChange::Token { token, .. } => accounts.add_token_hash(&name, token.clone()),
        };
        done.map_err(|e| match e {
            crate::ServerError::Account(reason) => reason,
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{hash_password, new_token};
    use crate::protocol::Credential;

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn the_first_registration_wins_and_the_table_verifies_what_the_log_carried() {
        let mut table = Accounts::in_memory();
        let first = hash_password("correct horse").unwrap();
        let second = hash_password("another horse").unwrap();
        let (token, token_hash) = new_token();
        let changes = [
            AccountChange::Register { name: n("Alice"), password: first },
            AccountChange::Register { name: n("alice"), password: second.clone() },
            AccountChange::Password { name: n("bob"), password: second.clone() },
            AccountChange::Token { name: n("ALICE"), token: token_hash },
            AccountChange::Remove { name: n("carol") },
            AccountChange::Register { name: n("sistema"), password: second },
        ];
        let outcomes: Vec<_> = changes.iter().map(|c| c.apply(&mut table)).collect();
        assert_eq!(
            outcomes,
            [
                Ok(()),
                Err("Alice is registered already".into()),
                Err("no account bob".into()),
                Ok(()),
                Err("there is no account carol".into()),
                Err("sistema is reserved for the server's notices".into()),
            ]
        );
        assert_eq!(table.names(), [n("Alice")]);
        let password = |p: &str| Credential::Password(p.into());
        assert_eq!(table.verify(&n("alice"), &password("correct horse")), Some(n("Alice")));
        assert_eq!(table.verify(&n("alice"), &password("another horse")), None, "the second registration lost");
        assert_eq!(table.verify(&n("alice"), &Credential::Token(token)), Some(n("Alice")));
    }

    #[test]
    fn hostile_hashes_from_the_log_are_refused() {
        let mut table = Accounts::in_memory();
        let good = hash_password("correct horse").unwrap();
        let expensive = good.replace("m=19456", "m=4194304");
        let argon2i = good.replace("$argon2id$", "$argon2i$");
        for bad in [
            "correct horse".to_string(), // a password, not a hash
            String::new(),
            "$argon2id$v=19$m=19456,t=2,p=1$".into(),
            expensive,
            good.replace("t=2", "t=1000"),
            argon2i,
            format!("{good}{}", "A".repeat(300)),
        ] {
            let change = AccountChange::Register { name: n("mallory"), password: bad.clone() };
            assert!(change.apply(&mut table).is_err(), "{bad:?} must be refused");
        }
        let token = AccountChange::Token { name: n("mallory"), token: "ab".repeat(32) };
        assert_eq!(token.apply(&mut table), Err("no account mallory".into()));
        AccountChange::Register { name: n("mallory"), password: good }.apply(&mut table).unwrap();
        for bad in ["AB".repeat(32), "ab".repeat(31), "zz".repeat(32), "chat_secret".into()] {
            let change = AccountChange::Token { name: n("mallory"), token: bad.clone() };
            assert!(change.apply(&mut table).is_err(), "{bad:?} must be refused");
        }
    }
}
