//! Bad flags and unreachable nodes give one clear line naming the problem and a
//! non-zero exit, never a panic.

use eventide_tests::{cli, free_addr};

fn assert_refused(args: &[&str], needle: &str) {
    let output = cli(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} must fail");
    assert!(stderr.contains(needle), "{args:?}: stderr {stderr:?} should mention {needle:?}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}

#[test]
fn bad_run_flags_are_refused_with_the_flag_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    assert_refused(&["run", "--data-dir", data, "--listen", "127.0.0.1:70000"], "--listen");
    assert_refused(&["run", "--data-dir", data, "--listen", "not-an-address"], "--listen");
    assert_refused(&["run", "--data-dir", data, "--bootstrap-expect", "0"], "--bootstrap-expect");
    assert_refused(&["run", "--data-dir", data, "--voters", "4"], "--voters");
    assert_refused(&["run", "--data-dir", data, "--seed", "nohost"], "--seed");
    assert_refused(&["run", "--data-dir", data, "--poll-interval", "often"], "--poll-interval");
    assert_refused(&["run", "--data-dir", data, "--runner-slots=-1"], "--runner-slots");
    for (flag, value) in [
        ("--artifact-copies", "0"),
        ("--artifact-copies", "9"),
        ("--artifact-max-file", "huge"),
        ("--artifact-max-build", "0"),
        ("--artifact-retention", "0s"),
        ("--artifact-retention", "forever"),
        ("--client-gossip-interval", "100ms"),
        ("--client-gossip-interval", "2h"),
    ] {
        assert_refused(&["run", "--data-dir", data, flag, value], flag);
    }
    assert_refused(&["run"], "--data-dir");
    assert_refused(
        &["run", "--data-dir", data, "--config", "/nonexistent/eventide.toml"],
        "--config",
    );
    assert_refused(&["run", "--frobnicate"], "--frobnicate");
    // Nothing was created for refused configurations.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn an_unusable_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let addr = free_addr().to_string();
    let data = file.join("data");
    assert_refused(
        &["run", "--data-dir", data.to_str().expect("utf-8"), "--listen", &addr],
        "--data-dir",
    );
}

#[test]
fn a_bad_config_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("eventide.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:7800\"\nvoterz = 3\n").expect("write");
    let data = dir.path().join("data");
    assert_refused(
        &[
            "run",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ],
        "--config",
    );
}

#[test]
fn status_of_an_unreachable_node_is_a_clear_error() {
    let addr = free_addr().to_string();
    assert_refused(&["status", "--node", &addr], "cannot reach an eventide node");
    assert_refused(&["status", "--node", &addr, "--json"], "cannot reach an eventide node");
}
