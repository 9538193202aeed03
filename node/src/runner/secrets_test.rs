//! Which secrets a job is given, and the lines its log shows for the others.

use eventide_consensus::auth::Sealer;
use eventide_consensus::command::{Observe, ObservedCommit};
use eventide_consensus::state::StoredSecret;
use eventide_consensus::{Command, CommitId, JobId, RepoId, Timestamp};

use super::*;

fn cluster_secret(text: &str) -> Secret {
    Secret::try_new(text.as_bytes()).expect("a valid secret")
}

fn commit(n: u8) -> CommitId {
    CommitId::try_new(&format!("{n:02x}").repeat(20)).expect("a commit id")
}

fn apply(state: &mut State, command: Command) {
    let reply = state.apply(&command);
    assert!(reply.refusal().is_none(), "{command:?}: {reply:?}");
}

/// Job 1 on `main` (commit 1), job 2 on `feature` (commit 2); `PYPI_TOKEN` for `main`
/// only, `SHARED` for every branch, both sealed under `secret`.
fn state(secret: &Secret) -> State {
    let mut state = State::default();
    apply(&mut state, Command::AddRepo { url: "file:///srv/app.git".into(), at: Timestamp(1) });
    for (n, branch) in [(1, "main"), (2, "feature")] {
        apply(
            &mut state,
            Command::Observe(Observe {
                repo: RepoId(1),
                branch: branch.into(),
                expected_head: None,
                new_head: commit(n),
                commits: vec![ObservedCommit { commit: commit(n), labels: Vec::new() }],
                skipped: Vec::new(),
                at: Timestamp(2),
            }),
        );
    }
    let sealer = Sealer::new(secret);
    let sealed = sealer.seal("PYPI_TOKEN", b"pypi-t0ken").expect("seals");
    let branches = vec!["main".to_owned()];
    apply(
        &mut state,
        Command::SetRestrictedSecret {
            name: "PYPI_TOKEN".into(),
            sealed,
            branches,
            at: Timestamp(3),
        },
    );
    let sealed = sealer.seal("SHARED", b"shared\nvalue").expect("seals");
    apply(&mut state, Command::SetSecret { name: "SHARED".into(), sealed, at: Timestamp(3) });
    state
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn env(given: &JobSecrets) -> Vec<(&str, &str)> {
    given.env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect()
}

#[test]
fn a_job_of_an_allowed_branch_gets_the_values_and_its_output_masks_them() {
    let secret = cluster_secret("the cluster secret of this test");
    let state = state(&secret);
    let asked = names(&["PYPI_TOKEN", "SHARED"]);
    let given = for_job(&state, state.job(JobId(1)), &asked, Some(&secret));
    assert_eq!(env(&given), [("PYPI_TOKEN", "pypi-t0ken"), ("SHARED", "shared\nvalue")]);
    assert!(given.notes.is_empty(), "{:?}", given.notes);
    assert_eq!(given.mask.text("pypi-t0ken shared value"), "*** *** ***");
}

#[test]
fn a_job_of_another_branch_is_told_which_secret_it_does_not_get_and_why() {
    let secret = cluster_secret("the cluster secret of this test");
    let state = state(&secret);
    let asked = names(&["PYPI_TOKEN", "SHARED", "UNKNOWN"]);
    let given = for_job(&state, state.job(JobId(2)), &asked, Some(&secret));
    assert_eq!(env(&given), [("SHARED", "shared\nvalue")]);
    assert_eq!(
        given.notes,
        [
            "secret PYPI_TOKEN withheld: it is only for branches main, not feature",
            "secret UNKNOWN missing: it is not in the secret store (`eventide-node secret set UNKNOWN`)",
        ]
    );
    assert_eq!(given.mask.text("pypi-t0ken"), "pypi-t0ken", "only what it was given is masked");
}

#[test]
fn a_rerun_claiming_main_for_a_feature_commit_is_withheld() {
    let secret = cluster_secret("the cluster secret of this test");
    let mut state = state(&secret);
    let rerun = Command::Rerun {
        repo: RepoId(1),
        branch: "main".into(),
        commit: commit(2),
        labels: Vec::new(),
        at: Timestamp(4),
    };
    apply(&mut state, rerun);
    let given = for_job(&state, state.job(JobId(3)), &names(&["PYPI_TOKEN"]), Some(&secret));
    assert!(given.env.is_empty());
    assert_eq!(
        given.notes,
        ["secret PYPI_TOKEN withheld: it is only for branches main, and this rerun's commit was never seen on main"]
    );
}

#[test]
fn without_the_job_or_a_cluster_secret_that_opens_them_nothing_is_given() {
    let secret = cluster_secret("the cluster secret of this test");
    let state = state(&secret);
    let asked = names(&["SHARED"]);
    let lagging = for_job(&state, None, &asked, Some(&secret));
    assert_eq!(
        lagging.notes,
        ["secret SHARED withheld: the replica asked has not caught up with the job yet"]
    );
    let job = state.job(JobId(1));
    let keyless = for_job(&state, job, &asked, None);
    assert_eq!(
        keyless.notes,
        ["secret SHARED missing: this runner has no cluster secret to open it"]
    );
    let other = cluster_secret("another cluster secret entirely");
    let wrong = for_job(&state, job, &asked, Some(&other));
    assert_eq!(
        wrong.notes,
        ["secret SHARED missing: it does not open under this runner's cluster secret"]
    );
    for given in [lagging, keyless, wrong] {
        assert!(given.env.is_empty() && given.mask.is_empty());
    }
}

fn given(name: &str, value: &[u8], secret: &Secret) -> SecretGrant {
    let sealed = Sealer::new(secret).seal(name, value).expect("seals");
    let stored = StoredSecret { sealed, created_at: Timestamp(1), updated_at: Timestamp(1) };
    SecretGrant { name: name.to_owned(), grant: Grant::Given(stored) }
}

#[test]
fn grants_from_the_leader_open_under_this_runners_cluster_secret_only() {
    let secret = cluster_secret("the cluster secret of this test");
    let refused = SecretGrant {
        name: "PYPI_TOKEN".to_owned(),
        grant: Grant::Refused { why: "withheld: it is only for branches main, not feature".into() },
    };
    let grants = [given("SHARED", b"shared", &secret), refused];
    let opened = open(&grants, Some(&secret));
    assert_eq!(env(&opened), [("SHARED", "shared")]);
    assert_eq!(
        opened.notes,
        ["secret PYPI_TOKEN withheld: it is only for branches main, not feature"]
    );
    assert_eq!(opened.mask.text("shared"), "***");

    let other = cluster_secret("another cluster secret entirely");
    let wrong = open(&grants, Some(&other));
    assert!(wrong.env.is_empty() && wrong.mask.is_empty());
    assert_eq!(
        wrong.notes[0],
        "secret SHARED missing: it does not open under this runner's cluster secret"
    );
    // A value sealed under another name does not open as this one.
    let mut renamed = given("OTHER", b"other", &secret);
    renamed.name = "SHARED".to_owned();
    let opened = open(&[renamed], Some(&secret));
    assert!(opened.env.is_empty());
    assert_eq!(
        opened.notes,
        ["secret SHARED missing: it does not open under this runner's cluster secret"]
    );
    let binary = open(&[given("BINARY", &[0xff, 0xfe], &secret)], Some(&secret));
    assert_eq!(binary.notes, ["secret BINARY missing: its value is not text"]);
}
