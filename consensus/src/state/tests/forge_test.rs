//! Repository settings and the status outbox: which job changes enqueue a status, that a
//! job has at most one waiting (the newest), and how deliveries and refusals leave it.

use super::*;
use crate::command::TestSummary;
use crate::state::{
    branch_matches, ForgeKind, JobStatus, RepoSettings, MAX_DESCRIPTION_BYTES, MAX_OUTBOX,
};

fn github() -> RepoSettings {
    RepoSettings {
        forge: Some(ForgeKind::Github),
        token: Some("GH_TOKEN".into()),
        ..RepoSettings::default()
    }
}

fn watch(url: &str, settings: RepoSettings) -> Command {
    Command::WatchRepo { url: url.into(), settings, at: Timestamp(1) }
}

fn set_settings(repo: RepoId, settings: RepoSettings) -> Command {
    Command::SetRepoSettings { repo, settings, at: Timestamp(2) }
}

fn delivered(id: u64, refused: Option<&str>) -> Command {
    Command::StatusDelivered { id, refused: refused.map(str::to_owned), at: Timestamp(9_000) }
}

/// The outbox as (id, job, status, description).
fn outbox(state: &State) -> Vec<(u64, u64, JobStatus, String)> {
    state
        .status_outbox()
        .map(|(id, update)| (id, update.job.0, update.status, update.description.clone()))
        .collect()
}

fn watched_with_forge() -> State {
    let mut state = State::default();
    assert_eq!(apply_ok(&mut state, watch(URL, github())), Reply::RepoAdded { repo: REPO });
    state
}

#[test]
fn a_repository_watched_with_settings_keeps_them_and_one_without_has_the_defaults() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, add_repo(OTHER_URL));
    assert_eq!(state.repo_settings(REPO), &github());
    assert_eq!(state.repo_settings(RepoId(2)), &RepoSettings::default());
    assert_eq!(state.repo_settings(RepoId(99)), &RepoSettings::default());
}

#[test]
fn settings_out_of_bounds_are_refused_and_change_nothing() {
    let mut state = watched_with_forge();
    let cases = [
        RepoSettings { token: Some("not a name".into()), ..github() },
        RepoSettings { api_url: Some("ftp://x".into()), ..github() },
        RepoSettings { api_url: Some("https://x".into()), forge: None, ..github() },
        RepoSettings { ca_file: Some("relative/ca.pem".into()), ..github() },
        RepoSettings { branches: vec!["main, dev".into()], ..github() },
        RepoSettings { branches: vec!["".into()], ..github() },
        RepoSettings { branches: vec!["b".into(); 33], ..github() },
        RepoSettings { poll_interval_ms: Some(5), ..github() },
        RepoSettings { status_context: Some(String::new()), ..github() },
    ];
    for settings in cases {
        let before = state.clone();
        let reply = state.apply(&set_settings(REPO, settings.clone()));
        assert!(
            matches!(reply, Reply::Refused(Refusal::Invalid { .. })),
            "{settings:?}: {reply:?}"
        );
        assert_eq!(state, before);
        let reply = state.apply(&watch(OTHER_URL, settings.clone()));
        assert!(
            matches!(reply, Reply::Refused(Refusal::Invalid { .. })),
            "{settings:?}: {reply:?}"
        );
        assert_eq!(state, before);
    }
    assert_refused(
        &mut state,
        set_settings(RepoId(9), github()),
        Refusal::UnknownRepo { repo: RepoId(9) },
    );
}

#[test]
fn every_change_of_a_job_enqueues_its_status_in_place_of_the_waiting_one() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1, 2]));
    assert_eq!(
        outbox(&state),
        vec![
            (1, 1, JobStatus::Queued, "queued".into()),
            (2, 2, JobStatus::Queued, "queued".into())
        ]
    );
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_eq!(
        outbox(&state),
        vec![
            (2, 2, JobStatus::Queued, "queued".into()),
            (3, 1, JobStatus::Running, "running".into())
        ]
    );
    // The final status replaces the running one that was never posted: no stale
    // `pending` can follow it.
    apply_ok(&mut state, finish(1, 1, Verdict::Failed));
    let (_, job, status, _) = outbox(&state)[1].clone();
    assert_eq!((job, status), (1, JobStatus::Failed));
    assert_eq!(state.statuses_waiting(REPO), 2);
}

#[test]
fn a_requeue_posts_pending_again_and_a_cancel_ends_with_its_reason() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    apply_ok(&mut state, requeue(1, 1));
    assert_eq!(outbox(&state), vec![(3, 1, JobStatus::Queued, "queued again (attempt 2)".into())]);
    apply_ok(&mut state, cancel(1));
    let (_, _, status, description) = outbox(&state)[0].clone();
    assert_eq!(status, JobStatus::Cancelled);
    assert!(description.starts_with("cancelled"), "{description}");
}

#[test]
fn a_delivery_takes_the_status_out_and_a_late_one_leaves_the_newer_status() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    // The queued status (id 1) was replaced while it was being posted.
    assert_eq!(
        apply_ok(&mut state, delivered(1, None)),
        Reply::StatusDelivered { id: 1, current: false }
    );
    assert_eq!(outbox(&state).len(), 1);
    assert_eq!(
        apply_ok(&mut state, delivered(2, None)),
        Reply::StatusDelivered { id: 2, current: true }
    );
    assert!(outbox(&state).is_empty());
    // A delivery of a job still waiting later does not lose its next status.
    apply_ok(&mut state, finish(1, 1, Verdict::Passed));
    assert_eq!(outbox(&state).len(), 1);
}

#[test]
fn a_refusal_is_kept_for_the_repository_until_a_status_is_delivered() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1, 2]));
    apply_ok(&mut state, delivered(1, Some("401 Unauthorized: Bad credentials")));
    let refusal = state.forge_refusal(REPO).expect("a refusal");
    assert_eq!(refusal.answer, "401 Unauthorized: Bad credentials");
    assert_eq!(refusal.at, Timestamp(9_000));
    apply_ok(&mut state, delivered(2, None));
    assert_eq!(state.forge_refusal(REPO), None);
}

#[test]
fn a_repository_without_a_forge_enqueues_nothing() {
    let mut state = repo_with_jobs(2);
    run_to_end(&mut state, 1, Verdict::Passed);
    assert!(outbox(&state).is_empty());
    // Settings without a forge (a branch filter) enqueue nothing either.
    let filtered = RepoSettings { branches: vec!["main".into()], ..RepoSettings::default() };
    apply_ok(&mut state, set_settings(REPO, filtered));
    apply_ok(&mut state, rerun(REPO, 1, &[]));
    assert!(outbox(&state).is_empty());
}

#[test]
fn dropping_the_forge_or_the_repository_drops_its_statuses_and_refusal() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1, 2]));
    apply_ok(&mut state, delivered(1, Some("404 Not Found")));
    apply_ok(&mut state, set_settings(REPO, RepoSettings::default()));
    assert!(outbox(&state).is_empty());
    assert_eq!(state.forge_refusal(REPO), None);
    assert_eq!(state.repo_settings(REPO), &RepoSettings::default());

    apply_ok(&mut state, set_settings(REPO, github()));
    apply_ok(&mut state, rerun(REPO, 1, &[]));
    assert_eq!(outbox(&state).len(), 1);
    apply_ok(&mut state, Command::RemoveRepo { repo: REPO, at: Timestamp(3) });
    assert!(outbox(&state).is_empty());
    assert_eq!(state.repo_settings(REPO), &RepoSettings::default());
}

#[test]
fn the_outbox_keeps_its_newest_statuses_when_full() {
    let mut state = State::default();
    apply_ok(&mut state, set_limits(|limits| limits.max_queue_per_repo = 500));
    apply_ok(&mut state, watch(URL, github()));
    let mut n: u64 = 0;
    while (n as usize) < MAX_OUTBOX + 3 {
        apply_ok(&mut state, rerun(REPO, 1, &[]));
        n += 1;
        let job = JobId(n);
        // End each job so the queue limit never bites.
        apply_ok(&mut state, Command::Cancel { job, reason: "x".into(), at: Timestamp(5) });
    }
    let ids: Vec<u64> = state.status_outbox().map(|(_, update)| update.job.0).collect();
    assert_eq!(ids.len(), MAX_OUTBOX);
    assert_eq!(ids.first(), Some(&4));
    assert_eq!(ids.last(), Some(&n));
}

#[test]
fn descriptions_say_what_a_person_scans_for_and_stay_short() {
    let mut state = watched_with_forge();
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1, 2, 3]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    let mut passed = outcome(Verdict::Passed, "");
    passed.summary = Some(TestSummary { passed: 12, failed: 0, skipped: 2, failing: Vec::new() });
    apply_ok(&mut state, finish_with(1, 1, passed));
    apply_ok(&mut state, assign(2, RUNNER, 1));
    let mut failed = outcome(Verdict::Failed, "");
    failed.summary =
        Some(TestSummary { passed: 8, failed: 2, skipped: 0, failing: vec!["a".into()] });
    apply_ok(&mut state, finish_with(2, 1, failed));
    apply_ok(&mut state, assign(3, RUNNER, 1));
    let mut error = outcome(Verdict::Error, "");
    error.message = Some("x".repeat(400));
    apply_ok(&mut state, finish_with(3, 1, error));
    let texts: Vec<String> = outbox(&state).into_iter().map(|(_, _, _, text)| text).collect();
    assert_eq!(texts[0], "12 passed, 2 skipped");
    assert_eq!(texts[1], "2 of 10 failed");
    assert!(texts[2].starts_with("error: xxx") && texts[2].len() <= MAX_DESCRIPTION_BYTES);
}

#[test]
fn branch_patterns_select_branches() {
    let patterns = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    assert!(branch_matches(&[], "anything/at/all"));
    let release = patterns(&["main", "release/*"]);
    assert!(branch_matches(&release, "main"));
    assert!(branch_matches(&release, "release/1.2"));
    assert!(!branch_matches(&release, "release/1.2/hotfix"));
    assert!(!branch_matches(&release, "mainline"));
    assert!(!branch_matches(&release, "feature/x"));
    let deep = patterns(&["team/**", "!team/*/wip", "v?"]);
    assert!(branch_matches(&deep, "team/a/b/c"));
    assert!(!branch_matches(&deep, "team/a/wip"));
    assert!(branch_matches(&deep, "v1"));
    assert!(!branch_matches(&deep, "v10"));
    // Only exclusions: nothing is named, so nothing passes.
    assert!(!branch_matches(&patterns(&["!wip"]), "main"));
    // A pathological pattern still answers (in time linear in pattern × name).
    let stars = patterns(&[&"*a".repeat(100)]);
    assert!(!branch_matches(&stars, &"a".repeat(99)));
}
