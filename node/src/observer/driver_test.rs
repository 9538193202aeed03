//! Tests of the observer's blocking preparation step, over real repositories.

use std::collections::BTreeMap;

use eventide_consensus::{CommitId, RepoId};

use super::*;
use crate::git::tests::Upstream;

fn watched(upstream: &Upstream, cursors: &[(&str, &CommitId)]) -> WatchedRepo {
    WatchedRepo {
        id: RepoId(1),
        url: upstream.url(),
        cursors: cursors.iter().map(|&(branch, head)| (branch.to_owned(), head.clone())).collect(),
        branches: Vec::new(),
        auth: Default::default(),
        fetch: true,
    }
}

/// Runs the preparation and collects what it sent: the proposals, once it checked that
/// they follow the heads it said it planned for.
fn prepare(mirrors: &Path, repo: &WatchedRepo) -> anyhow::Result<Vec<Proposal>> {
    let (sender, mut sent) = mpsc::channel(64);
    super::prepare(mirrors, repo, &sender)?;
    drop(sender);
    let Some(Prepared::Planned(planned)) = sent.blocking_recv() else {
        panic!("the heads planned for come first");
    };
    let mut proposals = Vec::new();
    while let Some(message) = sent.blocking_recv() {
        match message {
            Prepared::Proposal(proposal) => proposals.push(proposal),
            Prepared::Planned(_) => panic!("the heads planned for come once"),
        }
    }
    let proposed: BTreeMap<String, CommitId> = proposals
        .iter()
        .map(|proposal| (proposal.plan.branch.clone(), proposal.plan.new_head.clone()))
        .collect();
    assert_eq!(proposed, planned, "one proposal per branch planned for");
    Ok(proposals)
}

/// A build as the tests compare it: its commit and each job's step and labels.
type Observed = (CommitId, Vec<(String, Vec<String>)>);

fn summary(proposals: &[Proposal]) -> Vec<(String, Option<CommitId>, Vec<Observed>)> {
    proposals
        .iter()
        .map(|p| {
            let builds = p
                .builds
                .iter()
                .map(|build| {
                    let jobs = build.jobs.iter().map(|j| (j.step.clone(), j.labels.clone()));
                    (build.commit.clone(), jobs.collect())
                })
                .collect();
            (p.plan.branch.clone(), p.plan.expected_head.clone(), builds)
        })
        .collect()
}

/// A build of the one job `test` with `labels`.
fn observed(commit: &CommitId, labels: &[&str]) -> Observed {
    let labels = labels.iter().map(|label| (*label).to_owned()).collect();
    (commit.clone(), vec![("test".to_owned(), labels)])
}

#[test]
fn prepare_fetches_plans_and_reads_each_commits_labels() {
    let upstream = Upstream::new();
    let plain = upstream.commit("a.txt", b"1", "no configuration");
    let mirrors = tempfile::tempdir().expect("temp dir");

    let first = prepare(mirrors.path(), &watched(&upstream, &[])).expect("first round");
    assert_eq!(summary(&first), vec![("main".to_owned(), None, vec![observed(&plain, &[])])]);

    let config = "[test]\ncommand = \"true\"\nlabels = [\"linux\"]\n";
    let labelled = upstream.commit(".eventide.toml", config.as_bytes(), "labels");
    let broken = upstream.commit(".eventide.toml", b"not toml [", "broken");
    let cursors = [("main", &plain)];
    let next = prepare(mirrors.path(), &watched(&upstream, &cursors)).expect("next round");
    assert_eq!(
        summary(&next),
        vec![(
            "main".to_owned(),
            Some(plain.clone()),
            vec![observed(&labelled, &["linux"]), observed(&broken, &[])]
        )]
    );
    assert!(next[0].plan.skipped.is_empty());
    assert_eq!(next[0].plan.new_head, broken);

    let settled = [("main", &broken)];
    assert!(prepare(mirrors.path(), &watched(&upstream, &settled)).expect("quiet").is_empty());
}

#[test]
fn prepare_reads_each_commits_pipeline_subject_and_author() {
    let upstream = Upstream::new();
    let config = "[[step]]\nname = \"build\"\ncommand = \"true\"\n\n[[step]]\nname = \"test\"\n\
                  depends_on = [\"build\"]\nmatrix = { python = [\"3.11\", \"3.12\"] }\n\
                  command = \"true\"\nlabels = [\"linux\"]\n";
    let head = upstream.commit(".eventide.toml", config.as_bytes(), "Add a pipeline\n\nbody");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let first = prepare(mirrors.path(), &watched(&upstream, &[])).expect("first round");
    let build = &first[0].builds[0];
    assert_eq!(build.commit, head);
    assert_eq!(
        (build.subject.as_str(), build.author.as_str()),
        ("Add a pipeline", "t <t@example.invalid>")
    );
    type Shape = (String, Vec<(String, String)>, Vec<u16>, Vec<String>);
    let jobs: Vec<Shape> = build
        .jobs
        .iter()
        .map(|j| (j.step.clone(), j.matrix.clone(), j.needs.clone(), j.labels.clone()))
        .collect();
    let cell = |v: &str| vec![("python".to_owned(), v.to_owned())];
    let linux = vec!["linux".to_owned()];
    assert_eq!(
        jobs,
        vec![
            ("build".to_owned(), vec![], vec![], vec![]),
            ("test".to_owned(), cell("3.11"), vec![0], linux.clone()),
            ("test".to_owned(), cell("3.12"), vec![0], linux),
        ]
    );
    assert!(!build.cancel_superseded);
}

#[test]
fn a_round_for_room_plans_from_the_mirror_without_fetching() {
    let upstream = Upstream::new();
    let first = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    prepare(mirrors.path(), &watched(&upstream, &[])).expect("first round");
    let waiting = upstream.commit("a.txt", b"2", "fetched, then held back");
    let cursors = [("main", &first)];
    // A fetching round that is held back: the mirror has `waiting`, the cursor stays.
    prepare(mirrors.path(), &watched(&upstream, &cursors)).expect("held round");
    let pushed = upstream.commit("a.txt", b"3", "pushed since");

    let mut room = watched(&upstream, &cursors);
    room.fetch = false;
    let plans = prepare(mirrors.path(), &room).expect("room round");
    assert_eq!(
        summary(&plans),
        vec![("main".to_owned(), Some(first.clone()), vec![observed(&waiting, &[])])]
    );
    let fetched = prepare(mirrors.path(), &watched(&upstream, &cursors)).expect("next round");
    assert_eq!(fetched[0].plan.new_head, pushed);
}

#[test]
fn prepare_reports_an_unreachable_repository() {
    let mirrors = tempfile::tempdir().expect("temp dir");
    let repo = WatchedRepo {
        id: RepoId(7),
        url: "/does/not/exist/anywhere.git".to_owned(),
        cursors: BTreeMap::new(),
        branches: Vec::new(),
        auth: Default::default(),
        fetch: true,
    };
    let error = prepare(mirrors.path(), &repo).err().expect("unreachable");
    assert!(format!("{error:#}").contains("failed to fetch /does/not/exist"), "{error:#}");
}

#[test]
fn prepare_plans_only_the_branches_the_filter_passes() {
    let upstream = Upstream::new();
    let main = upstream.commit("a.txt", b"1", "on main");
    upstream.git(&["branch", "release/1.0"]);
    upstream.git(&["branch", "wip/idea"]);
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mut repo = watched(&upstream, &[]);
    repo.branches = vec!["main".into(), "release/*".into()];

    let plans = prepare(mirrors.path(), &repo).expect("a round");
    let branches: Vec<&str> = plans.iter().map(|p| p.plan.branch.as_str()).collect();
    assert_eq!(branches, vec!["main", "release/1.0"]);
    assert!(plans.iter().all(|p| p.plan.new_head == main));
}
