//! `eventide-node`: the one binary every Eventide machine runs, and its CLI.
//!
//! - `config`: flags, `EVENTIDE_*` and the TOML file, validated into one struct.
//! - `node`: builds a running node, hands each role only the handles it uses, and stops
//!   it cleanly; nothing imports it back.
//! - `raft_view`: the read side of the Raft handle (leader, role, applied index, changes),
//!   the only reader of openraft's metrics.
//! - `gossip`: chitchat membership and the keys a node publishes.
//! - `cluster`: bootstrap and autopilot (membership management on the leader).
//! - `repos`: watched repositories; `remote`: their fetch credentials from the secret
//!   store.
//! - `observer`, `dispatcher`, `runner`: the three CI roles; `statuses`: the leader's
//!   poster of commit statuses to forges (`forge`, from the library).
//! - `sandbox`: how jobs are isolated: bubblewrap, per-job cgroups, `sandbox check`
//!   (the rules, `isolation`, are in the library).
//! - `health`: what the cluster task and the observer report for `status`.
//! - `joblog`: where a job's output lives on the node that ran it (runner and API).
//! - `git`: mirrors, commit walks and checkouts; `repo_config` (from the library, with
//!   `units`): `.eventide.toml`;
//!   `summary`: test counts from output and JUnit reports.
//! - `api`: the HTTP API (public JSON, internal Raft RPC, `/metrics`).
//! - `artifacts`: files of build steps, stored on runners, copied, fetched and served.
//! - `server`: the HTTP server under it: connection cap, header and idle timeouts.
//! - `metrics`: the Prometheus registry (one `Arc<Metrics>` per node) and its update
//!   points.
//! - `client`: the CLI's HTTP client and its tables.
//! - `clock`: the wall clock proposers read.
//!
//! ```text
//!   gossip (UDP) ──> members ──> cluster ──> raft.initialize / change_membership
//!                                   │
//!   CLI ── HTTP ──> api ──> Writer ─┴─> Raft (openraft) ──> store (sled) ──> State
//!                    └── reads ──────────────────────────────────────────────┘
//!
//!   node ── builds ──> RaftView, Writer, replica, Gossip, Metrics
//!        └─ hands out ─> Observer · Dispatcher · Runner · cluster · api
//! ```

mod api;
mod artifacts;
mod client;
mod clock;
mod cluster;
mod config;
mod dispatcher;
mod git;
mod gossip;
mod health;
mod joblog;
mod metrics;
mod node;
mod observer;
mod raft_view;
mod remote;
mod repos;
mod runner;
mod sandbox;
mod server;
mod statuses;
mod summary;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use eventide_node::{forge, pipeline_config, repo_config, secrets, units};

use crate::client::{NodeArgs, ResultsArgs};
use crate::config::{RunArgs, RunConfig};

#[derive(Parser, Debug)]
#[command(
    name = "eventide-node",
    version,
    about = "Eventide: distributed continuous integration. Every machine runs this binary.",
    after_help = "Examples:\n  eventide-node run --data-dir /var/lib/eventide --listen 10.0.0.1:7800 --seed 10.0.0.2:7800\n  eventide-node status --node 10.0.0.2:7800"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run a node: gossip, Raft, API and (with slots) a runner.
    #[command(
        after_help = "Example (three nodes on one machine, each in its own terminal):\n  eventide-node run --data-dir /tmp/e1 --listen 127.0.0.1:7801 --seed 127.0.0.1:7802 --seed 127.0.0.1:7803\n  eventide-node run --data-dir /tmp/e2 --listen 127.0.0.1:7802 --seed 127.0.0.1:7801 --seed 127.0.0.1:7803\n  eventide-node run --data-dir /tmp/e3 --listen 127.0.0.1:7803 --seed 127.0.0.1:7801 --seed 127.0.0.1:7802"
    )]
    Run(Box<RunArgs>),
    /// Show the leader, the term, every node and the queue.
    #[command(
        after_help = "Examples:\n  eventide-node status\n  eventide-node status --node 127.0.0.1:7802 --json\n  eventide-node status --watch"
    )]
    Status {
        #[command(flatten)]
        node: NodeArgs,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Redraw every second until interrupted.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
    },
    /// Show jobs and their results, newest first.
    #[command(
        after_help = "Examples:\n  eventide-node results\n  eventide-node results --branch main --state failed --limit 5\n  eventide-node results --commit 1a2b3c4d --json\n  eventide-node results --all --json\n  eventide-node results --follow"
    )]
    Results(ResultsArgs),
    /// Print a job's output (from any node; live with --follow).
    #[command(after_help = "Examples:\n  eventide-node log 42\n  eventide-node log 42 --follow")]
    Log {
        /// The job id.
        job: u64,
        #[command(flatten)]
        node: NodeArgs,
        /// Keep printing while the job runs.
        #[arg(long, short)]
        follow: bool,
    },
    /// Test a commit again, as a new job.
    #[command(
        after_help = "Examples:\n  eventide-node rerun 1a2b3c4d\n  eventide-node rerun 1a2b3c4d --branch release --wait"
    )]
    Rerun {
        /// The commit (a prefix of at least 4 hex digits is enough).
        commit: String,
        /// The branch to record [default: the branch it was last tested on].
        #[arg(long)]
        branch: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
        /// Wait for the result and exit non-zero unless it passed.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a queued or running job.
    #[command(after_help = "Example:\n  eventide-node cancel 42")]
    Cancel {
        /// The job id.
        job: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Start an observer round now (what the git hook calls).
    #[command(after_help = "Example:\n  eventide-node notify --node 127.0.0.1:7801")]
    Notify {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Install git hooks that call `notify` after each commit or push.
    #[command(subcommand, after_help = "Example:\n  eventide-node hook install ~/src/app")]
    Hook(HookCommand),
    /// Manage watched repositories.
    #[command(
        subcommand,
        after_help = "Examples:\n  eventide-node repo add ~/src/app\n  eventide-node repo set 1 --branches main\n  eventide-node repo list"
    )]
    Repo(RepoCommand),
    /// Manage the cluster's secret store (values are sealed; only names are shown).
    #[command(
        subcommand,
        after_help = "Examples:\n  eventide-node secret set DEPLOY_KEY --from-file ./deploy_key\n  printf %s \"$TOKEN\" | eventide-node secret set FORGE_TOKEN\n  eventide-node secret set PYPI_TOKEN --branches 'main,release/*' < pypi_token.txt\n  eventide-node secret list"
    )]
    Secret(SecretCommand),
    /// A job's artifacts: the files a build step stored for the steps after it.
    #[command(
        subcommand,
        after_help = "Examples:\n  eventide-node artifact list 12\n  eventide-node artifact get 12 dist/app.whl -o app.whl"
    )]
    Artifact(ArtifactCommand),
    /// Check the job sandbox on this machine: run a probe job as the runner would and
    /// print what it could see.
    #[command(
        subcommand,
        after_help = "Examples:\n  eventide-node sandbox check\n  eventide-node sandbox check --job-network none --json"
    )]
    Sandbox(SandboxCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    #[command(
        after_help = "Examples:\n  eventide-node completions bash > ~/.local/share/bash-completion/completions/eventide-node\n  eventide-node completions zsh > ~/.zfunc/_eventide-node\n  eventide-node completions fish > ~/.config/fish/completions/eventide-node.fish"
    )]
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the API token derived from the cluster secret (for hooks and scripts).
    #[command(
        after_help = "Example:\n  EVENTIDE_TOKEN=$(eventide-node token --secret-file /etc/eventide/secret) eventide-node notify"
    )]
    Token {
        /// The cluster secret's file (or EVENTIDE_SECRET).
        #[arg(long, env = "EVENTIDE_SECRET_FILE", value_name = "FILE")]
        secret_file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum SandboxCommand {
    /// Run a probe job under the sandbox these flags give (the same as `run` takes, or
    /// its --config file) and print what it saw; exits non-zero if it saw too much.
    #[command(
        after_help = "Examples:\n  eventide-node sandbox check\n  eventide-node sandbox check --config /etc/eventide/node.toml\n  eventide-node sandbox check --sandbox-ro-bind /opt/toolchains --job-network none --json"
    )]
    Check {
        #[command(flatten)]
        run: Box<RunArgs>,
        /// Print one JSON document instead of a report.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum HookCommand {
    /// Write post-commit and post-receive hooks into a repository.
    #[command(
        after_help = "Example:\n  eventide-node hook install ~/src/app --node 127.0.0.1:7801"
    )]
    Install {
        /// The repository (a work tree or a bare repository).
        repo: std::path::PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand, Debug)]
enum RepoCommand {
    /// Watch a repository: a local path, a file://, http://, https:// or ssh:// url, or
    /// git@host:path. Settings name secrets of the secret store, never values.
    #[command(
        after_help = "Examples:\n  eventide-node repo add ~/src/app\n  eventide-node repo add https://github.com/acme/app.git --forge github --token GITHUB_TOKEN --webhook-secret GITHUB_HOOK --branches 'main,release/*'\n  eventide-node repo add git@gitea.example.com:acme/app.git --forge gitea --ssh-key DEPLOY_KEY --known-hosts GITEA_HOSTS --token GITEA_TOKEN"
    )]
    Add {
        /// Path or url of the repository.
        url: String,
        #[command(flatten)]
        settings: client::repos::RepoSettingsArgs,
        #[command(flatten)]
        node: client::repos::RepoNodeArgs,
    },
    /// Change a repository's settings: flags left out keep their value, an empty value
    /// clears one.
    #[command(
        after_help = "Examples:\n  eventide-node repo set 1 --branches 'main,release/*'\n  eventide-node repo set https://github.com/acme/app.git --webhook-secret GITHUB_HOOK\n  eventide-node repo set 1 --api-url ''"
    )]
    Set {
        /// Path or url of the repository (as `repo add` took it), or its id.
        url: String,
        #[command(flatten)]
        settings: client::repos::RepoSettingsArgs,
        #[command(flatten)]
        node: client::repos::RepoNodeArgs,
    },
    /// Stop watching a repository; its queued and running jobs are cancelled.
    #[command(
        after_help = "Examples:\n  eventide-node repo remove ~/src/app\n  eventide-node repo remove 3"
    )]
    Remove {
        /// Path or url of the repository (as `repo add` took it), or its id.
        url: String,
        #[command(flatten)]
        node: client::repos::RepoNodeArgs,
    },
    /// List watched repositories: forge, last fetch, errors.
    #[command(
        after_help = "Examples:\n  eventide-node repo list\n  eventide-node repo list --json"
    )]
    List {
        #[command(flatten)]
        node: client::repos::RepoNodeArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ArtifactCommand {
    /// List a job's artifacts: name, size, SHA-256 and the nodes that hold a copy.
    #[command(
        after_help = "Examples:\n  eventide-node artifact list 12\n  eventide-node artifact list 12 --json"
    )]
    List {
        /// The job's id.
        job: u64,
        #[command(flatten)]
        node: NodeArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download one artifact of a job, from any node.
    #[command(
        after_help = "Examples:\n  eventide-node artifact get 12 dist/app.whl\n  eventide-node artifact get 12 dist/app.whl -o /tmp/app.whl --force"
    )]
    Get {
        /// The job's id.
        job: u64,
        /// The artifact's name (its path in the job's workspace).
        name: String,
        /// Where to write it [default: its base name in the current directory].
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand, Debug)]
enum SecretCommand {
    /// Store a secret, or replace its value: read from --from-file, else from stdin (one
    /// trailing newline stripped); never from an argument, which `ps` would show.
    #[command(
        after_help = "Examples:\n  eventide-node secret set DEPLOY_KEY --from-file ./deploy_key\n  eventide-node secret set FORGE_TOKEN < token.txt\n  eventide-node secret set PYPI_TOKEN --branches 'main,release/*' < pypi_token.txt"
    )]
    Set {
        /// The secret's name: letters, digits and '_', not starting with a digit, at most 64.
        name: String,
        /// Read the value from this file (as it is, nothing stripped).
        #[arg(long, value_name = "FILE")]
        from_file: Option<std::path::PathBuf>,
        /// Give it only to jobs of these branches, comma-separated patterns as `repo add
        /// --branches` takes them (e.g. 'main,release/*'); left out: every branch, and a
        /// restriction set before is cleared.
        #[arg(long, value_name = "PATTERNS")]
        branches: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List the stored secrets' names, times and branches (never their values).
    #[command(
        after_help = "Examples:\n  eventide-node secret list\n  eventide-node secret list --json"
    )]
    List {
        #[command(flatten)]
        node: NodeArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    #[command(after_help = "Example:\n  eventide-node secret rm DEPLOY_KEY")]
    Rm {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// How long the process waits for blocking tasks (a stuck fetch) once it has stopped.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Commands::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "eventide-node",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    if let Commands::Run(args) = &mut cli.command {
        // Before the runtime starts any thread.
        args.secret_env = config::take_secret_env();
        if let Err(error) = forbid_inspection() {
            eprintln!("error: failed to make the node non-dumpable: {error}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Commands::Run(args) => {
                let config = RunConfig::try_from_args(*args)?;
                init_logging();
                // Before any git operation: every later fetch reads these limits.
                git::set_fetch_limits(config.fetch)?;
                node::run(config).await
            }
            Commands::Status { node, json, watch } => client::status(&node, json, watch).await,
            Commands::Results(args) => client::results(args).await,
            Commands::Log { job, node, follow } => client::log(&node, job, follow).await,
            Commands::Rerun { commit, branch, node, wait } => {
                client::rerun(&node, &commit, branch, wait).await
            }
            Commands::Cancel { job, node } => client::cancel(&node, job).await,
            Commands::Notify { node } => client::notify(&node).await,
            Commands::Hook(HookCommand::Install { repo, node }) => {
                client::hook_install(&node, &repo)
            }
            Commands::Repo(RepoCommand::Add { url, settings, node }) => {
                client::repos::add(&node, &url, &settings).await
            }
            Commands::Repo(RepoCommand::Set { url, settings, node }) => {
                client::repos::set(&node, &url, &settings).await
            }
            Commands::Repo(RepoCommand::Remove { url, node }) => {
                client::repos::remove(&node, &url).await
            }
            Commands::Repo(RepoCommand::List { node, json }) => {
                client::repos::list(&node, json).await
            }
            Commands::Secret(SecretCommand::Set { name, from_file, branches, node }) => {
                client::secrets::set(&node, &name, from_file.as_deref(), branches.as_deref()).await
            }
            Commands::Secret(SecretCommand::List { node, json }) => {
                client::secrets::list(&node, json).await
            }
            Commands::Secret(SecretCommand::Rm { name, node }) => {
                client::secrets::remove(&node, &name).await
            }
            Commands::Artifact(ArtifactCommand::List { job, node, json }) => {
                client::artifacts::list(&node, job, json).await
            }
            Commands::Artifact(ArtifactCommand::Get { job, name, output, force, node }) => {
                client::artifacts::get(&node, job, &name, output, force).await
            }
            Commands::Completions { .. } => Ok(()),
            Commands::Token { secret_file } => client::token(secret_file.as_deref()),
            Commands::Sandbox(SandboxCommand::Check { run, json }) => {
                let settings = config::sandbox_settings(*run)?;
                sandbox::check::run(settings, json).await
            }
        }
    });
    // A blocking task can be stuck in a fetch until its deadline; the node has stopped
    // everything it owns by now, so do not wait for such a task to exit.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Makes this process non-dumpable, so that other processes of the same user (the jobs
/// it runs) cannot read its `/proc/<pid>/environ` or memory, nor trace it; nor does it
/// leave core dumps. Processes with `CAP_SYS_PTRACE` (root) still can.
#[cfg(target_os = "linux")]
fn forbid_inspection() -> std::io::Result<()> {
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn forbid_inspection() -> std::io::Result<()> {
    Ok(())
}

/// Logs go to stderr; `EVENTIDE_LOG` (or `RUST_LOG`) filters them, `info` by default.
fn init_logging() {
    let filter = std::env::var("EVENTIDE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,openraft=error,chitchat=warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
