//! Tests of the observer's blocking preparation step, over real repositories.

use std::collections::BTreeMap;

use eventide_consensus::{CommitId, ObservedCommit, RepoId};

use super::*;
use crate::git::tests::Upstream;

fn watched(upstream: &Upstream, cursors: &[(&str, &CommitId)]) -> WatchedRepo {
    WatchedRepo {
        id: RepoId(1),
        url: upstream.url(),
        cursors: cursors.iter().map(|&(branch, head)| (branch.to_owned(), head.clone())).collect(),
        branches: Vec::new(),
    }
}

fn summary(proposals: &[Proposal]) -> Vec<(String, Option<CommitId>, Vec<ObservedCommit>)> {
    proposals
        .iter()
        .map(|p| (p.plan.branch.clone(), p.plan.expected_head.clone(), p.commits.clone()))
        .collect()
}

fn observed(commit: &CommitId, labels: &[&str]) -> ObservedCommit {
    ObservedCommit {
        commit: commit.clone(),
        labels: labels.iter().map(|label| (*label).to_owned()).collect(),
    }
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
fn prepare_reports_an_unreachable_repository() {
    let mirrors = tempfile::tempdir().expect("temp dir");
    let repo = WatchedRepo {
        id: RepoId(7),
        url: "/does/not/exist/anywhere.git".to_owned(),
        cursors: BTreeMap::new(),
        branches: Vec::new(),
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
