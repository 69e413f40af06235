//! Exact-output tests of authentication: registered names, credentials, refusals slowed down.

use std::net::IpAddr;
use std::time::Duration;

use super::tests::{drain, n, settle, t0};
use super::*;
use crate::protocol::Credential;

fn refused(conn: ConnId, code: ErrorCode, message: &str) -> Vec<Output> {
    vec![
        Output::Reply { conn, frame: ServerFrame::Refused { code, message: message.into() }, early: false },
        Output::Close { conn },
    ]
}

fn router(auth: AuthMode) -> Router {
    let mut r = Router::new(RouterConfig { auth, ..RouterConfig::default() }, RouterState::default());
    r.handle(t0(), Input::Registered { names: vec![n("Alice")] });
    r
}

fn accepted(r: &mut Router, conn: ConnId, addr: [u8; 4]) {
    r.handle(t0(), Input::Accepted { conn, addr: IpAddr::from(addr) });
}

fn password(p: &str) -> Credential {
    Credential::Password(p.into())
}

#[test]
fn an_open_server_keeps_registered_names_for_their_owners() {
    let mut r = router(AuthMode::Open);
    accepted(&mut r, 1, [127, 0, 0, 1]);
    r.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    assert_eq!(
        drain(&mut r),
        refused(1, ErrorCode::NameTaken, "the name Alice is registered: log in with its password or token")
    );
    accepted(&mut r, 2, [127, 0, 0, 1]);
    r.handle(t0(), Input::Login { conn: 2, name: n("bob") });
    assert!(matches!(drain(&mut r)[0], Output::SessionStarted { conn: 2, .. }));
    // With a credential the shell checks it, and the owner logs in under the registered form.
    accepted(&mut r, 3, [127, 0, 0, 1]);
    r.handle(t0(), Input::LoginWith { conn: 3, name: n("ALICE"), credential: password("secret123") });
    assert_eq!(
        drain(&mut r),
        vec![Output::Authenticate { conn: 3, name: n("ALICE"), credential: password("secret123") }]
    );
    r.handle(t0(), Input::Authenticated { conn: 3, name: Some(n("Alice")) });
    let out = drain(&mut r);
    assert!(matches!(&out[0], Output::SessionStarted { conn: 3, name, .. } if *name == n("Alice")), "{out:?}");
}

#[test]
fn an_accounts_server_needs_a_credential_and_answers_failures_alike() {
    let mut r = router(AuthMode::Accounts);
    accepted(&mut r, 1, [127, 0, 0, 1]);
    r.handle(t0(), Input::Login { conn: 1, name: n("bob") });
    assert_eq!(
        drain(&mut r),
        refused(1, ErrorCode::AuthFailed, "this server requires a password or token: log in with one")
    );
    // An unknown name and a wrong password: the shell found no account either way; the same refusal.
    for (conn, who) in [(2, "carol"), (3, "alice")] {
        accepted(&mut r, conn, [127, 0, 0, 1]);
        r.handle(t0(), Input::LoginWith { conn, name: n(who), credential: password("guess1234") });
        drain(&mut r);
        r.handle(t0(), Input::Authenticated { conn, name: None });
        assert_eq!(drain(&mut r), refused(conn, ErrorCode::AuthFailed, "wrong name, password or token"));
    }
}

#[test]
fn repeated_failures_from_one_address_are_answered_later_and_later() {
    let mut r = router(AuthMode::Accounts);
    let mut delays = Vec::new();
    for conn in 1..=7 {
        accepted(&mut r, conn, [10, 0, 0, 9]);
        r.handle(t0(), Input::LoginWith { conn, name: n("alice"), credential: password("guess1234") });
        drain(&mut r);
        r.handle(t0(), Input::Authenticated { conn, name: None });
        let out = drain(&mut r);
        if out.is_empty() {
            let due = r.poll_timeout().expect("a delayed refusal");
            delays.push(due - t0());
            r.handle_timeout(due);
            assert_eq!(drain(&mut r), refused(conn, ErrorCode::AuthFailed, "wrong name, password or token"));
        } else {
            assert_eq!(out, refused(conn, ErrorCode::AuthFailed, "wrong name, password or token"));
            delays.push(Duration::ZERO);
        }
    }
    let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 0, 0, 250, 500, 1000, 2000]);
    // Another address is not slowed down by this one's failures.
    accepted(&mut r, 20, [10, 0, 0, 10]);
    r.handle(t0(), Input::LoginWith { conn: 20, name: n("alice"), credential: password("guess1234") });
    drain(&mut r);
    r.handle(t0(), Input::Authenticated { conn: 20, name: None });
    assert_eq!(drain(&mut r).len(), 2, "refused at once");
    settle(&mut r);
}

#[test]
fn the_name_of_the_servers_notices_is_nobodys() {
    for mode in [AuthMode::Open, AuthMode::Accounts] {
        let mut r = router(mode);
        for (conn, name) in [(1, "Sistema"), (2, "sistema"), (3, "SISTEMA"), (4, "SIstema")] {
            accepted(&mut r, conn, [127, 0, 0, 1]);
            let message = format!("the name {name} is reserved for the server's notices");
            match mode {
                AuthMode::Open => r.handle(t0(), Input::Login { conn, name: n(name) }),
                // Even an account by that name (made before the rule) cannot log in under it.
                AuthMode::Accounts => r.handle(t0(), Input::Authenticated { conn, name: Some(n(name)) }),
            }
            assert_eq!(drain(&mut r), refused(conn, ErrorCode::InvalidName, &message), "{mode:?} {name}");
        }
        assert_eq!(r.online(), 0);
    }
}
