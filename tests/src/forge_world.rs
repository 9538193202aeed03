//! A cluster wired to a real https git server and the test forge, for the forge tests
//! (`t88_forge`) and the status benchmark (`examples/status_cost.rs`): three nodes with a
//! cluster secret, polling once a minute (so only webhooks start rounds quickly), whose
//! statuses link to [`PUBLIC_URL`]; the secrets `FORGE_TOKEN` (the git server's token),
//! `SERVER_TOKEN` (the same as `USER:TOKEN`) and `HOOK_SECRET` stored.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use eventide_api::{JobDoc, RepoDoc};

use crate::forge::{Forge, ReceivedStatus, TestForge};
use crate::gitserver::{HttpsGitServer, HTTPS_USERNAME};
use crate::repo::GitRepo;
use crate::{cli, Cluster, Options};

/// The cluster secret of every [`World`].
pub const SECRET: &str = "forge test cluster secret 88";
/// The value of the `HOOK_SECRET` secret: what the forge signs deliveries with.
pub const HOOK_SECRET: &str = "whsec-5b0f3c-forge-test";
/// The nodes' `--public-url`.
pub const PUBLIC_URL: &str = "https://ci.example.com";

/// The test's world: a cluster, a git server, a forge and the CLI's secret file.
pub struct World {
    pub cluster: Cluster,
    pub server: HttpsGitServer,
    pub forge: TestForge,
    /// The cluster secret, for the CLI.
    pub secret_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A repository on the git server: its work tree, bare copy and url.
pub struct Hosted {
    pub work: GitRepo,
    pub bare: PathBuf,
    pub url: String,
}

impl World {
    /// Starts the git server, the forge and the cluster, and stores the secrets.
    pub fn start() -> World {
        let server = HttpsGitServer::start();
        let forge = TestForge::start(server.token());
        let options = Options {
            secret: Some(SECRET.to_owned()),
            extra: vec![
                "--poll-interval".into(),
                "60s".into(),
                "--public-url".into(),
                PUBLIC_URL.into(),
            ],
            ..Options::default()
        };
        let cluster = Cluster::start(3, options);
        cluster.wait_for_agreed_leader();
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("cli.secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret file");
        let world = World { cluster, server, forge, secret_file, _dir: dir };
        world.secret_set("FORGE_TOKEN", world.server.token());
        // GitLab and Gitea send another user name with a token by default; this server
        // wants its own, which a `USER:TOKEN` value names.
        world.secret_set("SERVER_TOKEN", &format!("{HTTPS_USERNAME}:{}", world.server.token()));
        world.secret_set("HOOK_SECRET", HOOK_SECRET);
        world
    }

    /// Node `index`'s address.
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.cluster.nodes[index].addr
    }

    /// `eventide-node ARGS` against node 1; must succeed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        self.cli_ok_at(0, args)
    }

    /// `eventide-node ARGS` against node `index`; must succeed.
    pub fn cli_ok_at(&self, index: usize, args: &[&str]) -> String {
        let node = self.addr(index).to_string();
        let file = self.secret_file.display().to_string();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--node", &node, "--secret-file", &file]);
        let output = cli(&all);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `eventide-node secret set NAME` with `value`, from a file.
    pub fn secret_set(&self, name: &str, value: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("value");
        std::fs::write(&file, value).expect("write value");
        self.cli_ok(&["secret", "set", name, "--from-file", &file.display().to_string()]);
    }

    /// A repository `owner/name.git` with a passing `.eventide.toml`, on the server.
    pub fn host(&self, path: &str) -> Hosted {
        let work = GitRepo::new();
        work.configure("true", "");
        // Its own content: two repositories made in the same second would otherwise
        // have the same first commit.
        work.write("NAME", path);
        work.commit("first");
        let bare = work.path().with_extension("bare.git");
        let output = Command::new("git")
            .args(["clone", "--quiet", "--bare"])
            .arg(work.path())
            .arg(&bare)
            .output()
            .expect("git clone --bare");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let url = self.server.serve(path, &bare);
        Hosted { work, bare, url }
    }

    /// Watches `hosted` as a repository of `forge` whose API is the test forge.
    pub fn watch(&self, hosted: &Hosted, forge: Forge, token: &str) -> RepoDoc {
        let api = self.forge.api_url(forge);
        let ca = self.server.ca_path().display().to_string();
        self.cli_ok(&[
            "repo",
            "add",
            &hosted.url,
            "--forge",
            forge.as_str(),
            "--api-url",
            &api,
            "--token",
            token,
            "--webhook-secret",
            "HOOK_SECRET",
            "--ca-file",
            &ca,
        ]);
        let repos: Vec<RepoDoc> =
            serde_json::from_str(&self.cli_ok(&["repo", "list", "--json"])).expect("repo list");
        repos.into_iter().find(|repo| repo.url == hosted.url).expect("the repository is listed")
    }

    /// Every job, as node `index` lists it.
    pub fn jobs(&self, index: usize) -> Vec<JobDoc> {
        self.cluster.nodes[index].job_docs("?limit=1000").unwrap_or_default()
    }

    /// Node `index`'s webhook endpoint for `forge`.
    pub fn hook_url(&self, index: usize, forge: Forge) -> String {
        format!("http://{}/api/v1/hooks/{}", self.addr(index), forge.as_str())
    }
}

impl Drop for World {
    /// On a failure, what the nodes logged and what the forge saw.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.cluster.dump_logs();
            eprintln!("forge received: {:#?}", self.forge.received());
            eprintln!("forge rejected: {:#?}", self.forge.rejected());
            eprintln!("git server log: {}", self.server.log());
        }
    }
}

impl Hosted {
    /// Commits on `main` and pushes to the server's copy; returns the commit.
    pub fn push(&self, message: &str) -> String {
        self.work.write("change.txt", message);
        let commit = self.work.commit(message);
        self.work.git(&["push", "--quiet", &self.bare.display().to_string(), "main"]);
        commit
    }
}

/// The statuses the forge accepted (201) for `sha`, in order.
pub fn accepted_for<'a>(statuses: &'a [ReceivedStatus], sha: &str) -> Vec<&'a ReceivedStatus> {
    statuses.iter().filter(|s| s.sha == sha && s.answered == 201).collect()
}

/// Whether a forge state is final (not `pending` or `running`).
pub fn is_final_state(state: &str) -> bool {
    !matches!(state, "pending" | "running")
}

/// Waits for the final status of `sha` on the forge; checks that it is the only final
/// one and that no `pending` was accepted after it.
pub fn final_status(forge: &TestForge, sha: &str, deadline: Duration) -> ReceivedStatus {
    let last = forge.wait_for(&format!("a final status of {sha}"), deadline, |received| {
        accepted_for(received, sha)
            .last()
            .filter(|s| is_final_state(&s.state))
            .map(|s| (*s).clone())
    });
    let received = forge.received();
    let accepted = accepted_for(&received, sha);
    let finals: Vec<_> = accepted.iter().filter(|s| is_final_state(&s.state)).collect();
    assert_eq!(finals.len(), 1, "exactly one final status of {sha}: {accepted:#?}");
    assert!(
        is_final_state(&accepted.last().expect("some").state),
        "nothing accepted after the final status of {sha}: {accepted:#?}"
    );
    last
}

impl Hosted {
    /// Commits on the current branch `branch` and pushes it; returns the commit.
    pub fn push_branch(&self, branch: &str, message: &str) -> String {
        self.work.write("change.txt", message);
        let commit = self.work.commit(message);
        self.work.git(&["push", "--quiet", &self.bare.display().to_string(), branch]);
        commit
    }
}
