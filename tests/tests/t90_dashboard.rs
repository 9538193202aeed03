//! The dashboard in a real browser: headless Chromium, driven over the DevTools protocol,
//! loads `/` from a follower of a live three-node cluster and must show the leader, the
//! jobs with their results, a job's output (live while it runs), rerun a job, and never
//! log a console error or throw. Strings from the API that look like HTML (a branch name,
//! a job's output) must appear as text.
//!
//! Screenshots go to `target/test-artifacts/t90_dashboard/`.

use std::time::Duration;

use eventide_consensus::auth::Secret;
use eventide_tests::cdp::{artifacts_dir, Browser};
use eventide_tests::http;
use eventide_tests::repo::GitRepo;
use eventide_tests::{wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

/// Page conditions on a loaded machine: a browser, three nodes and their jobs share it.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// A branch name git accepts that is also an HTML tag with a script in it.
const HOSTILE_BRANCH: &str = "x<img/src=x/onerror=window.__injected=1>";

fn id_of(jobs: &[Value], commit: &str) -> u64 {
    let job = jobs.iter().find(|j| j["commit"] == commit).expect("a job of the commit");
    job["id"].as_u64().expect("job id")
}

/// A JavaScript string literal for `text`.
fn js(text: &str) -> String {
    Value::from(text).to_string()
}

fn row_state(browser: &mut Browser, id: u64, state: &str, label: &str) {
    browser.wait_for(
        &format!("job #{id} shown as {state}"),
        PAGE_DEADLINE,
        &format!(
            "(() => {{ const row = document.querySelector('tr[data-job-id=\"{id}\"]'); \
             return !!row && row.dataset.state === {state} && row.innerText.includes({label}); }})()",
            state = js(state),
            label = js(label),
        ),
    );
}

fn assert_no_problems(browser: &Browser) {
    assert!(browser.problems().is_empty(), "the page logged errors: {:#?}", browser.problems());
}

/// A cluster watching `repo` whose jobs see `gate` (they wait for files the test makes
/// there).
fn sharing(repo: &GitRepo, gate: &std::path::Path) -> Options {
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--sandbox-bind".into(), gate.display().to_string()]);
    options
}

#[test]
fn the_dashboard_shows_the_cluster_jobs_and_a_live_log() {
    let repo = GitRepo::new();
    let gate = tempfile::tempdir().expect("temp dir");
    repo.configure("echo Ran 1 test; echo OK; echo dashboard-pass-marker", "");
    let passing = repo.commit("passing");
    let cluster = Cluster::start(3, sharing(&repo, gate.path()));
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);

    repo.configure(
        "echo '<script>window.__injected=2</script>'; echo dashboard-fail-marker; exit 3",
        "",
    );
    let failing = repo.commit("failing");
    repo.git(&["checkout", "-q", "-b", HOSTILE_BRANCH]);
    repo.configure("echo ok", "");
    let hostile = repo.commit("a branch with markup in its name");
    repo.git(&["checkout", "-q", "main"]);
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 3, DEADLINE);
    let (passed_id, failed_id, hostile_id) =
        (id_of(&jobs, &passing), id_of(&jobs, &failing), id_of(&jobs, &hostile));

    // Any node serves the dashboard: use a follower.
    let follower = (leader + 1) % cluster.nodes.len();
    let base = format!("http://{}", cluster.nodes[follower].addr);
    let artifacts = artifacts_dir("t90_dashboard");
    let mut browser = Browser::start(1280, 900);
    browser.navigate(&format!("{base}/"));

    // The leader's name as the page shows it, and as the serving node reports it at the
    // same moment (a loaded machine may see an election in between).
    wait_until("the leader's name in the page", PAGE_DEADLINE, || {
        let shown = browser.eval(
            "[document.getElementById('top-leader')?.textContent, \
              document.getElementById('stat-leader')?.textContent]",
        );
        let status = cluster.nodes[follower].status()?;
        let name = status["leader"]["name"].as_str()?;
        (shown[0] == name && shown[1] == name).then_some(())
    });
    browser.wait_for(
        "three alive nodes with one leader",
        PAGE_DEADLINE,
        "document.querySelectorAll('tr[data-node-id][data-alive=\"true\"]').length === 3 && \
         document.querySelectorAll('tr[data-node-id][data-raft=\"leader\"]').length === 1",
    );
    row_state(&mut browser, passed_id, "passed", "Passed");
    row_state(&mut browser, failed_id, "failed", "Failed");
    row_state(&mut browser, hostile_id, "passed", HOSTILE_BRANCH);
    assert_eq!(browser.eval("document.querySelectorAll('#view img').length"), 0);
    assert_eq!(browser.eval("typeof window.__injected"), "undefined");
    browser.wait_for(
        "the watched repository without errors",
        PAGE_DEADLINE,
        &format!(
            "[...document.querySelectorAll('tr[data-repo-id]')].some(r => \
             r.querySelector('.repo-url')?.textContent === {url} && \
             r.querySelector('.repo-health')?.textContent === 'OK')",
            url = js(&repo.url())
        ),
    );
    browser.screenshot(&artifacts.join("overview.png"), true);

    // Filters: by state, then by branch, each reflected in the address.
    browser.eval(
        "(() => { const s = document.getElementById('filter-state'); s.value = 'failed'; \
         s.dispatchEvent(new Event('change')); })()",
    );
    browser.wait_for(
        "only the failed job",
        PAGE_DEADLINE,
        &format!(
            "location.hash === '#/?state=failed' && \
             [...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId).join() === '{failed_id}'"
        ),
    );
    browser.eval(&format!(
        "(() => {{ document.getElementById('filter-state').value = ''; \
         const b = document.getElementById('filter-branch'); b.value = {branch}; \
         b.form.requestSubmit(); }})()",
        branch = js(HOSTILE_BRANCH)
    ));
    browser.wait_for(
        "only the job of the branch",
        PAGE_DEADLINE,
        &format!(
            "[...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId).join() === '{hostile_id}'"
        ),
    );

    browser.eval("[...document.querySelectorAll('.filters button')].find(b => b.textContent === 'Clear').click()");
    row_state(&mut browser, failed_id, "failed", "Failed");

    // The failed job's page, reached through its link, shows its output as text.
    browser.eval(&format!(
        "document.querySelector('tr[data-job-id=\"{failed_id}\"] a[data-focus-key=\"job\"]').click()"
    ));
    browser.wait_for(
        "the failed job's output",
        PAGE_DEADLINE,
        "(() => { const log = document.getElementById('job-log'); \
         return !!log && log.textContent.includes('dashboard-fail-marker') && \
         log.textContent.includes('<script>window.__injected=2</script>'); })()",
    );
    browser.wait_for(
        "the failed job's state and runner",
        PAGE_DEADLINE,
        "document.querySelector('.view-job')?.dataset.state === 'failed' && \
         document.getElementById('job-exit')?.textContent === '3' && \
         !['…', '—'].includes(document.getElementById('job-runner')?.textContent)",
    );
    assert_eq!(browser.eval("typeof window.__injected"), "undefined");
    browser.screenshot(&artifacts.join("failed-job.png"), true);

    // Rerun from the page: a new job of the same commit, and the page moves to it.
    browser.eval("[...document.querySelectorAll('.actions button')].find(b => b.textContent === 'Rerun').click()");
    let rerun_hash = browser.wait_for(
        "the page of the rerun job",
        PAGE_DEADLINE,
        &format!(
            "location.hash.startsWith('#/job/') && location.hash !== '#/job/{failed_id}' && \
             document.querySelector('.view-job h1')?.textContent === 'Job #' + location.hash.slice(6) \
             && location.hash"
        ),
    );
    let rerun_id: u64 =
        rerun_hash.as_str().and_then(|h| h.strip_prefix("#/job/")?.parse().ok()).expect("job id");
    let rerun = wait_for_final_jobs(&cluster, leader, 4, DEADLINE);
    let rerun = rerun.iter().find(|j| j["id"] == rerun_id).expect("the rerun job");
    assert_eq!(rerun["commit"], failing.as_str());
    assert_eq!(rerun["trigger"], "rerun");

    // A running job's output is followed: the job waits for a file the test creates.
    let release = gate.path().join("release");
    repo.configure(
        &format!(
            "echo live-start; while [ ! -e {} ]; do sleep 0.1; done; echo live-end",
            release.display()
        ),
        "",
    );
    let live = repo.commit("waits for the test");
    cluster.nodes[leader].notify();
    browser.navigate(&format!("{base}/#/"));
    let live_id = browser.wait_for(
        "the new job to run",
        PAGE_DEADLINE,
        &format!(
            "(() => {{ const row = [...document.querySelectorAll('tr[data-job-id]')].find(r => \
             r.querySelector('a[data-focus-key=\"commit\"]')?.title === {commit}); \
             return row && row.dataset.state === 'running' ? Number(row.dataset.jobId) : null; }})()",
            commit = js(&live)
        ),
    );
    // Keyboard: the focus stays on the running job's link while its row is redrawn (its
    // duration ticks), and Enter opens the job.
    let link = format!(
        "document.querySelector('tr[data-job-id=\"{live_id}\"] a[data-focus-key=\"job\"]')"
    );
    browser.eval(&format!("window.__focused = {link}; window.__focused.focus()"));
    browser.wait_for(
        "the running job's row redrawn with the focus kept on its link",
        PAGE_DEADLINE,
        &format!("(() => {{ const link = {link}; return link !== window.__focused && document.activeElement === link; }})()"),
    );
    browser.press_enter();
    browser.wait_for(
        "Enter on the link to open the job",
        PAGE_DEADLINE,
        &format!("location.hash === '#/job/{live_id}'"),
    );
    browser.wait_for(
        "the running job's output so far",
        PAGE_DEADLINE,
        "document.getElementById('job-log')?.textContent.includes('live-start')",
    );
    std::fs::write(&release, "").expect("release the job");
    browser.wait_for(
        "the rest of the output and the final state, without a reload",
        PAGE_DEADLINE,
        "document.getElementById('job-log')?.textContent.includes('live-end') && \
         document.querySelector('.view-job')?.dataset.state === 'passed'",
    );
    browser.screenshot(&artifacts.join("live-job.png"), true);
    eprintln!("screenshots in {}", artifacts.display());
    assert_no_problems(&browser);
}

/// With a secret and `--private-api` every API read wants a token: the page (whose own
/// files are open) asks for it once, then shows the cluster and removes a repository
/// with it. The refused requests before that are expected; nothing else may go wrong.
#[test]
fn a_private_cluster_s_dashboard_asks_for_the_token_once() {
    const SECRET: &str = "a dashboard secret of enough length";
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    let passing = repo.commit("passing");
    let mut options = Options::watching(repo.url());
    options.secret = Some(SECRET.to_owned());
    options.extra.push("--private-api".into());
    let cluster = Cluster::start(3, options);
    let token = Secret::try_new(SECRET.as_bytes()).expect("a valid secret").api_token();
    let bearer = format!("Bearer {token}");
    let served = cluster.nodes[0].addr;
    let leader = wait_until("a leader", DEADLINE, || {
        let headers = [("Authorization", bearer.as_str())];
        let (code, body) =
            http::request_with(served, "GET", "/api/v1/status", &headers, b"").ok()?;
        let status: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
        status["leader"]["name"].as_str().map(str::to_owned)
    });
    let (code, _) = http::get(served, "/api/v1/status").expect("status without a token");
    assert_eq!(code, 401, "a private API refuses reads without a token");

    let mut browser = Browser::start(1024, 768);
    browser.navigate(&format!("http://{served}/"));
    browser.wait_for(
        "the token prompt",
        PAGE_DEADLINE,
        "!!document.getElementById('token-input') && \
         document.getElementById('top-leader').textContent === '…'",
    );
    browser.eval(&format!(
        "(() => {{ document.getElementById('token-input').value = {token}; \
         document.querySelector('.token-form').requestSubmit(); }})()",
        token = js(&token)
    ));
    browser.wait_for(
        "the leader's name once the token is given",
        PAGE_DEADLINE,
        &format!("document.getElementById('top-leader').textContent === {}", js(&leader)),
    );
    wait_until("the passing commit's job", DEADLINE, || {
        let status = browser.eval(&format!(
            "[...document.querySelectorAll('tr[data-job-id]')].some(r => \
             r.dataset.state === 'passed' && r.innerText.includes({}))",
            js(&passing[..8])
        ));
        (status == true).then_some(())
    });
    // The repository's remove button arms on a first click and removes on the second,
    // a write that carries the token.
    let remove = "document.querySelector('tr[data-repo-id] .repo-remove')";
    browser.eval(&format!("{remove}.click()"));
    browser.wait_for(
        "the remove button armed",
        PAGE_DEADLINE,
        &format!("{remove}?.textContent === 'Confirm removal'"),
    );
    browser.eval(&format!("{remove}.click()"));
    browser.wait_for(
        "no repository left on the page",
        PAGE_DEADLINE,
        "document.querySelectorAll('tr[data-repo-id]').length === 0 && \
         !!document.querySelector('table.repos tr.empty')",
    );
    let (code, body) =
        http::request_with(served, "GET", "/api/v1/repos", &[("Authorization", &bearer)], b"")
            .expect("list repositories");
    assert_eq!((code, body.as_str()), (200, "[]"), "the repository is removed");
    // The form watches it again, with a forge, the names of its secrets and a filter.
    browser.eval(&format!(
        "(() => {{ const f = document.querySelector('form.repo-add'); \
         f.elements.url.value = {url}; f.elements.forge.value = 'github'; \
         f.elements.token.value = 'GITHUB_TOKEN'; f.elements.branches.value = 'main, release/*'; \
         f.requestSubmit(); }})()",
        url = js(&repo.url())
    ));
    browser.wait_for(
        "the repository back on the page with its forge",
        PAGE_DEADLINE,
        &format!(
            "[...document.querySelectorAll('tr[data-repo-id]')].some(r => \
             r.querySelector('.repo-url')?.textContent === {url} && \
             r.querySelector('.repo-forge .chip')?.textContent === 'github')",
            url = js(&repo.url())
        ),
    );
    let (code, body) =
        http::request_with(served, "GET", "/api/v1/repos", &[("Authorization", &bearer)], b"")
            .expect("list repositories");
    let repos: Vec<Value> = serde_json::from_str(&body).expect("repositories");
    assert_eq!(code, 200);
    assert_eq!(repos[0]["settings"]["token"], "GITHUB_TOKEN", "{body}");
    assert_eq!(repos[0]["settings"]["branches"], serde_json::json!(["main", "release/*"]));
    // Edit fills the form with those settings; Save changes only what the form holds.
    browser.eval("document.querySelector('tr[data-repo-id] .repo-edit').click()");
    browser.wait_for(
        "the form filled with the repository's settings",
        PAGE_DEADLINE,
        "document.querySelector('form.repo-add').elements.token.value === 'GITHUB_TOKEN' && \
         document.querySelector('form.repo-add .repo-submit').textContent === 'Save'",
    );
    browser.eval(
        "(() => { const f = document.querySelector('form.repo-add'); \
         f.elements.branches.value = 'main'; f.requestSubmit(); })()",
    );
    wait_until("the branch filter saved", DEADLINE, || {
        let (_, body) =
            http::request_with(served, "GET", "/api/v1/repos", &[("Authorization", &bearer)], b"")
                .ok()?;
        let repos: Vec<Value> = serde_json::from_str(&body).ok()?;
        (repos[0]["settings"]["branches"] == serde_json::json!(["main"])
            && repos[0]["settings"]["token"] == "GITHUB_TOKEN")
            .then_some(())
    });
    assert_eq!(browser.eval("document.getElementById('auth').childElementCount"), 0);
    let unexpected: Vec<&String> = browser
        .problems()
        .iter()
        .filter(|problem| !(problem.contains("401") && problem.starts_with("log error")))
        .collect();
    assert!(unexpected.is_empty(), "the page logged errors: {unexpected:#?}");
    assert!(
        browser.problems().iter().any(|problem| problem.contains("401")),
        "the first reads must have been refused without a token: {:#?}",
        browser.problems()
    );
}

/// The page as README shows it: a live cluster with passed, failed and running jobs at a
/// laptop's size. The screenshot goes to the test's artifacts; after changing the page,
/// `EVENTIDE_UPDATE_DOCS=1 cargo nextest run -p eventide-tests --test t90_dashboard`
/// redraws `docs/dashboard.png`.
#[test]
fn a_busy_cluster_renders_as_the_readme_shows_it() {
    let repo = GitRepo::new();
    let gate = tempfile::tempdir().expect("temp dir");
    let script = |failing: &str, wait: &str| {
        format!(
            "{wait}sleep 1; for t in test_parse_config test_schedule_jobs test_merge_results \
             test_render_log; do echo \"$t ... {{}}\"; done | \
             sed 's/test_merge_results ... {{}}/test_merge_results ... {failing}/; s/{{}}/ok/'; \
             echo; echo 'Ran 4 tests in 0.84s'; echo; {end}",
            end = if failing == "ok" { "echo OK" } else { "echo 'FAILED (failures=1)'; exit 1" }
        )
    };
    repo.configure(&script("ok", ""), "");
    repo.commit("Parse the scheduler configuration");
    let cluster = Cluster::start(3, sharing(&repo, gate.path()));
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);

    repo.write("docs/scheduling.md", "# Scheduling\n");
    repo.commit("Document job scheduling");
    repo.git(&["checkout", "-q", "-b", "feature/retry-backoff"]);
    repo.write("retry.txt", "exponential\n");
    repo.commit("Retry failed fetches with backoff");
    repo.git(&["checkout", "-q", "main"]);
    repo.configure(&script("FAIL", ""), "");
    repo.commit("Merge results in one pass");
    cluster.nodes[leader].notify();
    wait_for_final_jobs(&cluster, leader, 4, DEADLINE);
    let release = gate.path().join("release");
    let wait = format!("while [ ! -e {} ]; do sleep 0.1; done; ", release.display());
    repo.configure(&script("ok", &wait), "");
    repo.commit("Fix the merge of partial results");
    cluster.nodes[leader].notify();

    let follower = (leader + 1) % cluster.nodes.len();
    let mut browser = Browser::start(1280, 800);
    browser.navigate(&format!("http://{}/", cluster.nodes[follower].addr));
    browser.wait_for(
        "four finished jobs and a running one",
        PAGE_DEADLINE,
        "document.querySelectorAll('tr[data-job-id]').length === 5 && \
         document.querySelectorAll('tr[data-state=\"running\"]').length === 1 && \
         document.querySelectorAll('tr[data-node-id][data-alive=\"true\"]').length === 3",
    );
    let shot = if std::env::var_os("EVENTIDE_UPDATE_DOCS").is_some() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png")
    } else {
        artifacts_dir("t90_dashboard").join("readme.png")
    };
    browser.screenshot(&shot, true);
    std::fs::write(&release, "").expect("release the job");
    assert_no_problems(&browser);
}

/// A commit of a pipeline: its page draws the build as a graph of stages (`build`, then
/// the two cells of the `test` matrix side by side, then a `deploy` that is skipped
/// because one cell failed), each job with its state and a link to its page, and the
/// `build` step's artifact as a download link that serves the file.
#[test]
fn a_commit_page_draws_its_pipeline_as_a_step_graph() {
    let repo = GitRepo::new();
    repo.write(
        ".eventide.toml",
        "[[step]]\nname = \"build\"\n\
         command = \"mkdir -p dist && echo wheel-of-$EVENTIDE_COMMIT > dist/app.whl\"\n\
         artifacts = [\"dist/*.whl\"]\n\n\
         [[step]]\nname = \"test\"\ndepends_on = [\"build\"]\n\
         matrix = { python = [\"3.11\", \"3.12\"] }\n\
         command = \"test -f dist/app.whl && [ $MATRIX_PYTHON = 3.11 ]\"\n\n\
         [[step]]\nname = \"deploy\"\ndepends_on = [\"test\"]\ncommand = \"true\"\n",
    );
    let commit = repo.commit("Build once, test on two Pythons");
    let cluster = Cluster::start(3, Options::watching(repo.url()));
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 4, DEADLINE);

    let follower = (leader + 1) % cluster.nodes.len();
    let mut browser = Browser::start(1280, 900);
    browser.navigate(&format!("http://{}/#/commit/{commit}", cluster.nodes[follower].addr));
    let graph = browser.wait_for(
        "the build's graph with its final states",
        PAGE_DEADLINE,
        "(() => { const build = document.querySelector('section.build'); \
         if (!build || !build.querySelector('.badge')?.textContent.includes('Failed')) return null; \
         const stages = [...build.querySelectorAll('.stage')].map(stage => \
           [...stage.querySelectorAll('a.step')].map(step => \
             step.querySelector('.step-name').textContent + ':' + \
             [...step.classList].find(c => c.startsWith('step-') && c !== 'step')));\
         return JSON.stringify(stages); })()",
    );
    let stages: Value = serde_json::from_str(graph.as_str().expect("a string")).expect("json");
    assert_eq!(
        stages,
        serde_json::json!([
            ["build:step-passed"],
            ["test (python=3.11):step-passed", "test (python=3.12):step-failed"],
            ["deploy:step-skipped"]
        ]),
    );
    assert_eq!(
        browser.eval("document.querySelector('section.build .build-subject').textContent"),
        "Build once, test on two Pythons"
    );
    // The artifact's link downloads the file the step made, through the serving node.
    let served = browser.wait_for(
        "the artifact's link to serve the file",
        PAGE_DEADLINE,
        "(async () => { const link = document.querySelector('.step-artifacts a'); \
         if (!link || link.textContent !== 'dist/app.whl') return null; \
         const answer = await fetch(link.href); return answer.ok ? await answer.text() : null; })()",
    );
    assert_eq!(served, format!("wheel-of-{commit}\n").as_str());
    // A job's card opens its page.
    browser.eval("[...document.querySelectorAll('a.step')].find(a => a.textContent.includes('3.12')).click()");
    browser.wait_for(
        "the failed cell's page",
        PAGE_DEADLINE,
        "document.querySelector('.view-job')?.dataset.state === 'failed'",
    );
    browser.navigate(&format!("http://{}/#/commit/{commit}", cluster.nodes[follower].addr));
    browser.wait_for(
        "the graph again",
        PAGE_DEADLINE,
        "!!document.querySelector('section.build .stage')",
    );
    browser.screenshot(&artifacts_dir("t90_dashboard").join("pipeline.png"), true);
    assert_no_problems(&browser);
}
