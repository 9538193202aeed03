//! `SetSecret`, `SetRestrictedSecret` and `RemoveSecret`: the store keeps sealed values by
//! name, within its bounds, each for every branch or for some; and which job gets which.

use super::*;
use crate::auth::{Sealed, SEAL_OVERHEAD};
use crate::state::{SecretAccess, SecretInfo, Trigger, MAX_SECRETS, MAX_SECRET_VALUE_BYTES};

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

fn restricted(name: &str, branches: &[&str], at: u64) -> Command {
    Command::SetRestrictedSecret {
        name: name.to_owned(),
        sealed: sealed(1),
        branches: labels(branches),
        at: Timestamp(at),
    }
}

fn info(name: &str, created_at: u64, updated_at: u64) -> SecretInfo {
    SecretInfo {
        name: name.to_owned(),
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
        branches: Vec::new(),
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

#[test]
fn a_restriction_is_kept_until_the_secret_is_set_again_without_one_or_removed() {
    let mut state = State::default();
    let reply = apply_ok(&mut state, restricted("PYPI", &["main", "release/*"], 10));
    assert_eq!(
        reply,
        Reply::SecretSet {
            name: "PYPI".into(),
            created_at: Timestamp(10),
            updated_at: Timestamp(10)
        }
    );
    let listed = SecretInfo { branches: labels(&["main", "release/*"]), ..info("PYPI", 10, 10) };
    assert_eq!(state.secrets(), vec![listed]);
    assert_eq!(state.secret_branches("PYPI"), labels(&["main", "release/*"]));

    apply_ok(&mut state, set("PYPI", 1, 20));
    assert_eq!(state.secrets(), vec![info("PYPI", 10, 20)], "set again: for every branch");

    apply_ok(&mut state, restricted("PYPI", &["main"], 30));
    apply_ok(&mut state, restricted("PYPI", &[], 40));
    assert!(state.secret_branches("PYPI").is_empty(), "an empty list is no restriction");

    apply_ok(&mut state, restricted("PYPI", &["main"], 50));
    apply_ok(&mut state, remove("PYPI"));
    apply_ok(&mut state, set("PYPI", 1, 60));
    assert!(state.secret_branches("PYPI").is_empty(), "a removed secret forgets its branches");
}

#[test]
fn restrictions_are_checked_as_a_repositorys_branch_patterns_are() {
    let mut state = State::default();
    let too_many: Vec<String> = (0..33).map(|n| format!("b{n}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let long = "x".repeat(256);
    let too_long = format!("secret branches: branch pattern {long:?} is empty or too long");
    let cases = [
        (&too_many[..], "secret branches: at most 32 branch patterns"),
        (&["main", ""][..], "secret branches: branch pattern \"\" is empty or too long"),
        (&[long.as_str()][..], too_long.as_str()),
        (&["ma in"][..], "secret branches: branch pattern \"ma in\" has a space or a comma"),
        (&["a,b"][..], "secret branches: branch pattern \"a,b\" has a space or a comma"),
    ];
    for (branches, reason) in cases {
        assert_refused(&mut state, restricted("PYPI", branches, 1), invalid(reason));
    }
    assert_refused(
        &mut state,
        restricted("1X", &["main"], 1),
        invalid("a secret name has letters, digits and '_' only and does not start with a digit"),
    );
}

/// `main` with job 1 (commit 1) and `feature` with job 2 (commit 2), both pushed; the
/// secret `MAIN_ONLY` for `main` and `release/*`, `ANY` for every branch.
fn two_branches_and_two_secrets() -> State {
    let mut state = repo_with_jobs(1);
    apply_ok(&mut state, observe(REPO, "feature", None, &[2]));
    apply_ok(&mut state, restricted("MAIN_ONLY", &["main", "release/*"], 5));
    apply_ok(&mut state, set("ANY", 1, 5));
    state
}

fn rerun_on(state: &mut State, branch: &str, n: u8) -> JobId {
    let command = Command::Rerun {
        repo: REPO,
        branch: branch.to_owned(),
        commit: commit(n),
        labels: Vec::new(),
        at: Timestamp(9_000),
    };
    match apply_ok(state, command) {
        Reply::RerunQueued { job } => job,
        other => panic!("unexpected reply {other:?}"),
    }
}

/// What job `id` is told about each of the two secrets and an unknown one.
fn access(state: &State, id: JobId) -> Vec<&'static str> {
    let job = state.job(id).expect("a job");
    ["MAIN_ONLY", "ANY", "NONE"]
        .into_iter()
        .map(|name| match state.secret_for_job(job, name) {
            SecretAccess::Allowed(secret) => {
                assert_eq!(Some(secret), state.secret(name));
                "allowed"
            }
            SecretAccess::Unknown => "unknown",
            SecretAccess::OtherBranch { branches } => {
                assert_eq!(branches, labels(&["main", "release/*"]));
                "other branch"
            }
            SecretAccess::UnprovenBranch { branches } => {
                assert_eq!(branches, labels(&["main", "release/*"]));
                "unproven"
            }
        })
        .collect()
}

#[test]
fn a_push_job_gets_a_restricted_secret_only_on_a_matching_branch() {
    let mut state = two_branches_and_two_secrets();
    assert_eq!(access(&state, JobId(1)), ["allowed", "allowed", "unknown"], "main");
    assert_eq!(access(&state, JobId(2)), ["other branch", "allowed", "unknown"], "feature");
    let release = match apply_ok(&mut state, observe(REPO, "release/1.0", None, &[3])) {
        Reply::Observed { jobs } => jobs[0],
        other => panic!("unexpected reply {other:?}"),
    };
    assert_eq!(access(&state, release), ["allowed", "allowed", "unknown"], "release/1.0");
    assert_eq!(state.job(release).map(|job| job.trigger), Some(Trigger::Push));
}

#[test]
fn a_rerun_gets_a_restricted_secret_only_where_its_commit_was_seen_on_that_branch() {
    let mut state = two_branches_and_two_secrets();
    // The feature commit rerun as if it were on main: never seen there.
    let claimed = rerun_on(&mut state, "main", 2);
    assert_eq!(access(&state, claimed), ["unproven", "allowed", "unknown"]);
    // On its own branch it gets what a push there gets.
    let own = rerun_on(&mut state, "feature", 2);
    assert_eq!(access(&state, own), ["other branch", "allowed", "unknown"]);
    // The main commit, pushed there: its rerun on main is proven by the push job.
    let main = rerun_on(&mut state, "main", 1);
    assert_eq!(access(&state, main), ["allowed", "allowed", "unknown"]);
}

#[test]
fn a_rerun_on_a_branch_whose_head_is_the_commit_is_proven_without_a_push_job() {
    let mut state = two_branches_and_two_secrets();
    // main moves to commit 2 (the feature merged by a fast-forward): no push job of
    // commit 2 on main, since feature's job already tested it, but main's head is it.
    let command =
        Command::Observe(Observe { commits: Vec::new(), ..observation(REPO, MAIN, Some(1), &[2]) });
    apply_ok(&mut state, command);
    let rerun = rerun_on(&mut state, "main", 2);
    assert_eq!(access(&state, rerun), ["allowed", "allowed", "unknown"]);
    // Once main moves on, commit 2 is neither main's head nor pushed there.
    apply_ok(&mut state, observe(REPO, MAIN, Some(2), &[4]));
    let later = rerun_on(&mut state, "main", 2);
    assert_eq!(access(&state, later), ["unproven", "allowed", "unknown"]);
}
