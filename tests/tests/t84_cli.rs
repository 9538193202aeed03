//! The CLI for people: shell completions, an example in every command's help, and
//! tables that fit an 80-column terminal on a live cluster.

use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, wait_for_final_jobs, Cluster, Options, DEADLINE};

fn stdout(args: &[&str]) -> String {
    let output = cli(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef eventide-node"), ("fish", "complete -c")]
    {
        let script = stdout(&["completions", shell]);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for command in ["status", "results", "rerun", "completions"] {
            assert!(script.contains(command), "{shell} script does not complete {command}");
        }
    }
}

#[test]
fn an_unknown_shell_is_a_clear_error() {
    let output = cli(&["completions", "tcsh"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing on stdout for a refused shell");
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    assert!(
        stderr.contains("bash") && stderr.contains("zsh") && stderr.contains("fish"),
        "{stderr}"
    );
}

/// The subcommands a `--help` text lists under "Commands:", without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let top = stdout(&["--help"]);
    let commands = subcommands(&top);
    assert!(commands.len() >= 10, "too few commands found in {top}");
    let mut paths: Vec<Vec<String>> = commands.iter().map(|c| vec![c.clone()]).collect();
    let mut checked = 0;
    while let Some(path) = paths.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout(&args);
        assert!(help.contains("Example"), "`{}` has no example:\n{help}", args.join(" "));
        for nested in subcommands(&help) {
            let mut deeper = path.clone();
            deeper.push(nested);
            paths.push(deeper);
        }
        checked += 1;
    }
    assert!(checked > commands.len(), "nested commands (repo add, hook install) were checked");
}

fn assert_fits(what: &str, text: &str) {
    assert!(text.lines().count() >= 2, "{what} printed too little:\n{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{what}: line wider than 80 columns: {line:?}");
    }
}

#[test]
fn status_and_results_fit_80_columns_on_a_live_cluster() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 3 tests; echo OK", "");
    repo.commit("passing");
    let cluster = Cluster::start(3, Options::watching(repo.url()));
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    repo.git(&["checkout", "-q", "-b", "feature/a-rather-long-branch-name-for-the-table"]);
    repo.configure("echo FAILED; exit 1", "");
    repo.commit("failing on a long branch");
    cluster.nodes[leader].notify();

    for (index, node) in cluster.nodes.iter().enumerate() {
        wait_for_final_jobs(&cluster, index, 2, DEADLINE);
        let addr = node.addr.to_string();
        assert_fits("status", &stdout(&["status", "--node", &addr]));
        let results = stdout(&["results", "--node", &addr]);
        assert_fits("results", &results);
        assert!(results.contains("passed") && results.contains("failed"), "{results}");
    }
}
