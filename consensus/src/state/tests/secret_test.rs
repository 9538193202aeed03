//! `SetSecret` and `RemoveSecret`: the store keeps sealed values by name, within its bounds.

use super::*;
use crate::auth::{Sealed, SEAL_OVERHEAD};
use crate::state::{SecretInfo, MAX_SECRETS, MAX_SECRET_VALUE_BYTES};

/// A sealed value of `len` clear-text bytes (the state never opens it).
fn sealed(len: usize) -> Sealed {
    Sealed { nonce: [9; 24], ciphertext: vec![0xa5; len + SEAL_OVERHEAD] }
}

fn set(name: &str, len: usize, at: u64) -> Command {
    Command::SetSecret { name: name.to_owned(), sealed: sealed(len), at: Timestamp(at) }
}

fn remove(name: &str) -> Command {
    Command::RemoveSecret { name: name.to_owned(), at: Timestamp(50) }
}

fn info(name: &str, created_at: u64, updated_at: u64) -> SecretInfo {
    SecretInfo {
        name: name.to_owned(),
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
    }
}

#[test]
fn a_secret_is_stored_and_its_update_keeps_the_creation_time() {
    let mut state = State::default();
    let reply = apply_ok(&mut state, set("DEPLOY_KEY", 10, 10));
    assert_eq!(
        reply,
        Reply::SecretSet {
            name: "DEPLOY_KEY".into(),
            created_at: Timestamp(10),
            updated_at: Timestamp(10)
        }
    );
    let reply = apply_ok(&mut state, set("DEPLOY_KEY", 12, 20));
    assert_eq!(
        reply,
        Reply::SecretSet {
            name: "DEPLOY_KEY".into(),
            created_at: Timestamp(10),
            updated_at: Timestamp(20)
        }
    );
    apply_ok(&mut state, set("_other", 0, 30));
    assert_eq!(state.secrets(), vec![info("DEPLOY_KEY", 10, 20), info("_other", 30, 30)]);
    assert_eq!(state.secret("DEPLOY_KEY").map(|s| s.sealed.clone()), Some(sealed(12)));
}

#[test]
fn a_removed_secret_is_gone_and_an_unknown_one_is_refused() {
    let mut state = State::default();
    apply_ok(&mut state, set("A", 1, 10));
    assert_eq!(apply_ok(&mut state, remove("A")), Reply::SecretRemoved { name: "A".into() });
    assert!(state.secrets().is_empty());
    assert_refused(&mut state, remove("A"), Refusal::UnknownSecret { name: "A".into() });
}

#[test]
fn names_outside_the_pattern_are_refused() {
    let pattern = "a secret name has letters, digits and '_' only and does not start with a digit";
    let cases = [
        ("", "a secret name cannot be empty".to_owned()),
        ("1ABC", pattern.to_owned()),
        ("A-B", pattern.to_owned()),
        ("A B", pattern.to_owned()),
        ("A.B", pattern.to_owned()),
        ("ÄB", pattern.to_owned()),
        ("../etc", pattern.to_owned()),
        (&"A".repeat(65), "a secret name has at most 64 characters, not 65".to_owned()),
    ];
    let mut state = State::default();
    for (name, reason) in cases {
        assert_refused(&mut state, set(name, 1, 1), Refusal::Invalid { reason });
    }
    for name in ["A", "_", "a1", "Z_9", &"a".repeat(64)] {
        apply_ok(&mut state, set(name, 1, 1));
    }
}

#[test]
fn a_value_above_64_kib_or_shorter_than_its_tag_is_refused() {
    let mut state = State::default();
    apply_ok(&mut state, set("MOST", MAX_SECRET_VALUE_BYTES, 1));
    assert_refused(
        &mut state,
        set("TOO_LARGE", MAX_SECRET_VALUE_BYTES + 1, 1),
        invalid("a secret value has at most 65536 bytes, not 65537"),
    );
    let cut = Command::SetSecret {
        name: "CUT".into(),
        sealed: Sealed { nonce: [0; 24], ciphertext: vec![0; SEAL_OVERHEAD - 1] },
        at: Timestamp(1),
    };
    assert_refused(&mut state, cut, invalid("a sealed value is shorter than its tag"));
}

#[test]
fn at_most_256_secrets_are_kept_but_each_may_still_change() {
    let mut state = State::default();
    for n in 0..MAX_SECRETS {
        apply_ok(&mut state, set(&format!("S{n}"), 1, 1));
    }
    assert_refused(
        &mut state,
        set("ONE_MORE", 1, 2),
        Refusal::LimitReached { what: "no more secrets can be stored".into(), limit: 256 },
    );
    apply_ok(&mut state, set("S0", 2, 3));
    apply_ok(&mut state, remove("S1"));
    apply_ok(&mut state, set("ONE_MORE", 1, 4));
}

#[test]
fn secrets_ride_in_a_batch_like_any_command() {
    let mut state = State::default();
    let reply = apply_ok(&mut state, Command::Batch(vec![set("A", 1, 1), remove("B")]));
    assert_eq!(
        reply,
        Reply::Batch(vec![
            Reply::SecretSet {
                name: "A".into(),
                created_at: Timestamp(1),
                updated_at: Timestamp(1)
            },
            Reply::Refused(Refusal::UnknownSecret { name: "B".into() }),
        ])
    );
}
