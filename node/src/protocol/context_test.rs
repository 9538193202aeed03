//! What a job is given, decided from a state, and the leader's answer on the wire.

use eventide_consensus::auth::{Sealer, Secret};
use eventide_consensus::codec;
use eventide_consensus::command::{Observe, ObservedCommit};
use eventide_consensus::network::decode_request;
use eventide_consensus::{Command, CommitId, NodeId, RepoId, Timestamp};

use super::*;

const URL: &str = "file:///srv/app.git";

fn cluster_secret() -> Secret {
    Secret::try_new(b"the cluster secret of this test").expect("a valid secret")
}

fn commit(n: u8) -> CommitId {
    CommitId::try_new(&format!("{n:02x}").repeat(20)).expect("a commit id")
}

fn apply(state: &mut State, command: Command) {
    let reply = state.apply(&command);
    assert!(reply.refusal().is_none(), "{command:?}: {reply:?}");
}

/// Job 1 on `main` (commit 1), job 2 on `feature` (commit 2), both assigned (attempt 1);
/// `PYPI_TOKEN` for `main` only, `SHARED` for every branch, `TOKEN` the repository's
/// fetch token.
fn state() -> State {
    let mut state = State::default();
    apply(&mut state, Command::AddRepo { url: URL.into(), at: Timestamp(1) });
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
    let sealer = Sealer::new(&cluster_secret());
    let sealed = sealer.seal("PYPI_TOKEN", b"pypi-t0ken").expect("seals");
    let branches = vec!["main".to_owned()];
    let name = "PYPI_TOKEN".to_owned();
    apply(&mut state, Command::SetRestrictedSecret { name, sealed, branches, at: Timestamp(3) });
    for name in ["SHARED", "TOKEN"] {
        let sealed = sealer.seal(name, b"a value").expect("seals");
        apply(&mut state, Command::SetSecret { name: name.into(), sealed, at: Timestamp(3) });
    }
    let settings = RepoSettings {
        forge: Some(ForgeKind::Gitlab),
        token: Some("TOKEN".into()),
        known_hosts: Some("HOSTS".into()),
        ca_file: Some("/etc/ca.pem".into()),
        ..RepoSettings::default()
    };
    apply(&mut state, Command::SetRepoSettings { repo: RepoId(1), settings, at: Timestamp(4) });
    for job in [1, 2] {
        let runner = NodeId(7);
        apply(
            &mut state,
            Command::Assign { job: JobId(job), runner, attempt: 1, at: Timestamp(5) },
        );
    }
    state
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Each grant as the name and either `given` or the note.
fn decided(grants: &[SecretGrant]) -> Vec<(&str, &str)> {
    grants
        .iter()
        .map(|grant| match &grant.grant {
            Grant::Given(_) => (grant.name.as_str(), "given"),
            Grant::Refused { why } => (grant.name.as_str(), why.as_str()),
        })
        .collect()
}

fn request(job: u64, attempt: u32, secrets: &[&str]) -> JobContextRequest {
    JobContextRequest { job: JobId(job), attempt, repo_url: URL.into(), secrets: names(secrets) }
}

#[test]
fn each_secret_is_given_sealed_or_refused_with_its_rule() {
    let state = state();
    let asked = names(&["PYPI_TOKEN", "SHARED", "UNKNOWN"]);
    let main = grants_for(&state, assigned_job(&state, JobId(1), 1), &asked);
    assert_eq!(
        decided(&main),
        [
            ("PYPI_TOKEN", "given"),
            ("SHARED", "given"),
            (
                "UNKNOWN",
                "missing: it is not in the secret store (`eventide-node secret set UNKNOWN`)"
            ),
        ]
    );
    let Grant::Given(stored) = &main[0].grant else { panic!("given") };
    assert_eq!(Some(stored), state.secret("PYPI_TOKEN"), "the stored value, still sealed");
    let feature = grants_for(&state, assigned_job(&state, JobId(2), 1), &asked[..2]);
    assert_eq!(
        decided(&feature),
        [
            ("PYPI_TOKEN", "withheld: it is only for branches main, not feature"),
            ("SHARED", "given"),
        ]
    );
}

#[test]
fn a_rerun_naming_a_branch_that_never_had_its_commit_is_withheld() {
    let mut state = state();
    let rerun = Command::Rerun {
        repo: RepoId(1),
        branch: "main".into(),
        commit: commit(2),
        labels: Vec::new(),
        at: Timestamp(6),
    };
    apply(&mut state, rerun);
    let runner = NodeId(7);
    apply(&mut state, Command::Assign { job: JobId(3), runner, attempt: 1, at: Timestamp(7) });
    let grants = grants_for(&state, assigned_job(&state, JobId(3), 1), &names(&["PYPI_TOKEN"]));
    assert_eq!(
        decided(&grants),
        [(
            "PYPI_TOKEN",
            "withheld: it is only for branches main, and this rerun's commit was never seen on main"
        )]
    );
}

#[test]
fn a_job_not_yet_assigned_at_that_attempt_gets_nothing() {
    let mut state = state();
    let rerun = Command::Rerun {
        repo: RepoId(1),
        branch: "main".into(),
        commit: commit(1),
        labels: Vec::new(),
        at: Timestamp(6),
    };
    apply(&mut state, rerun);
    assert!(assigned_job(&state, JobId(3), 1).is_none(), "still queued");
    assert!(assigned_job(&state, JobId(1), 2).is_none(), "an attempt not made yet");
    assert!(assigned_job(&state, JobId(99), 1).is_none(), "no such job");
    assert!(assigned_job(&state, JobId(1), 1).is_some());
    let grants = grants_for(&state, None, &names(&["SHARED"]));
    assert_eq!(
        decided(&grants),
        [("SHARED", "withheld: the replica asked has not caught up with the job yet")]
    );
}

#[test]
fn credentials_name_their_secrets_sealed_and_an_unknown_repo_has_none() {
    let state = state();
    let credentials = repo_credentials(&state, URL).expect("a known repository");
    assert_eq!(credentials.forge, Some(ForgeKind::Gitlab));
    assert_eq!(credentials.ca_file.as_deref(), Some("/etc/ca.pem"));
    let token = credentials.token.expect("a token");
    assert_eq!((token.name.as_str(), token.stored.as_ref()), ("TOKEN", state.secret("TOKEN")));
    let hosts = credentials.known_hosts.expect("known hosts");
    assert_eq!((hosts.name.as_str(), hosts.stored), ("HOSTS", None), "named, not stored");
    assert_eq!(credentials.ssh_key, None);
    assert_eq!(repo_credentials(&state, "file:///srv/other.git"), None);
}

#[test]
fn only_the_leader_answers_and_at_most_the_secrets_a_job_may_ask_for() {
    let state = state();
    let asked = request(1, 1, &["SHARED"]);
    assert_eq!(answer(false, &state, &asked), JobContextResponse::NotLeader);
    let mut many = request(1, 1, &[]);
    many.secrets = vec!["SHARED".to_owned(); MAX_JOB_SECRETS + 1];
    let JobContextResponse::Context(context) = answer(true, &state, &many) else {
        panic!("answered")
    };
    assert_eq!(context.secrets.len(), MAX_JOB_SECRETS + 1);
    assert!(context.secrets[..MAX_JOB_SECRETS].iter().all(|g| matches!(g.grant, Grant::Given(_))));
    let last = &context.secrets[MAX_JOB_SECRETS];
    assert_eq!(
        last.grant,
        Grant::Refused { why: "withheld: a job may ask for at most 32 secrets".into() }
    );
}

#[test]
fn the_request_and_the_answer_cross_the_codec_unchanged() {
    let state = state();
    let asked = request(2, 1, &["PYPI_TOKEN", "SHARED"]);
    let body = codec::encode(&asked).expect("encode");
    let received: JobContextRequest =
        decode_request("dispatcher", JOB_CONTEXT_PATH, &body).expect("decodes");
    assert_eq!(received, asked);
    let answered = answer(true, &state, &received);
    let bytes = codec::encode(&answered).expect("encode");
    let read: JobContextResponse = codec::decode(&bytes).expect("decode");
    assert_eq!(read, answered);
    let JobContextResponse::Context(context) = read else { panic!("answered") };
    assert_eq!(context.credentials, repo_credentials(&state, URL));
    assert_eq!(
        decided(&context.secrets),
        [
            ("PYPI_TOKEN", "withheld: it is only for branches main, not feature"),
            ("SHARED", "given")
        ]
    );
    // What crosses is sealed: the clear value is nowhere in the bytes.
    assert!(!bytes.windows(b"a value".len()).any(|window| window == b"a value"));
    for garbage in [&b""[..], &[codec::FORMAT_V1, 0xff, 0xff][..]] {
        assert!(
            decode_request::<JobContextRequest>("dispatcher", JOB_CONTEXT_PATH, garbage).is_err()
        );
    }
}
