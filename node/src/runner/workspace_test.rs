use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::time::Duration;

use super::*;

const LIMIT: u64 = 1024;

fn workspace() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o644), 0).expect("mkfifo");
}

/// Runs `read` on its own thread so that a read that blocks fails the test instead of
/// hanging it.
fn read_within_seconds(root: &Path, relative: &str) -> Result<Vec<u8>, Refusal> {
    let (sender, receiver) = mpsc::channel();
    let (root, relative) = (root.to_owned(), PathBuf::from(relative));
    std::thread::spawn(move || {
        let _ = sender.send(read(&root, &relative, LIMIT));
    });
    receiver.recv_timeout(Duration::from_secs(5)).expect("read returns without blocking")
}

#[test]
fn a_regular_file_is_read() {
    let dir = workspace();
    std::fs::create_dir_all(dir.path().join("reports/deep")).expect("mkdir");
    std::fs::write(dir.path().join(".eventide.toml"), "[test]").expect("write");
    std::fs::write(dir.path().join("reports/deep/a.xml"), "<a/>").expect("write");
    assert_eq!(read(dir.path(), Path::new(".eventide.toml"), LIMIT).expect("read"), b"[test]");
    assert_eq!(read(dir.path(), Path::new("./reports/deep/a.xml"), LIMIT).expect("read"), b"<a/>");
    assert!(matches!(read(dir.path(), Path::new("absent"), LIMIT), Err(Refusal::Missing)));
    assert!(matches!(read(dir.path(), Path::new("absent/a.xml"), LIMIT), Err(Refusal::Missing)));
    assert!(matches!(
        read(dir.path(), Path::new(".eventide.toml/a"), LIMIT),
        Err(Refusal::Missing)
    ));
}

#[test]
fn a_symbolic_link_is_refused_wherever_it_points() {
    let dir = workspace();
    let outside = workspace();
    std::fs::write(outside.path().join("secret"), "outside").expect("write");
    std::fs::write(dir.path().join("inside"), "inside").expect("write");
    symlink(outside.path().join("secret"), dir.path().join("out")).expect("link");
    symlink("inside", dir.path().join("in")).expect("link");
    symlink("/dev/zero", dir.path().join("zero")).expect("link");
    symlink("missing", dir.path().join("dangling")).expect("link");
    for name in ["out", "in", "zero", "dangling"] {
        let refusal = read_within_seconds(dir.path(), name).expect_err(name);
        assert!(matches!(refusal, Refusal::SymbolicLink), "{name}: {refusal}");
        assert!(refusal.to_string().starts_with("is a symbolic link"), "{refusal}");
    }
}

#[test]
fn a_file_under_a_linked_directory_is_refused() {
    let dir = workspace();
    let outside = workspace();
    std::fs::create_dir_all(outside.path().join("sub")).expect("mkdir");
    std::fs::write(outside.path().join("sub/a.xml"), "outside").expect("write");
    std::fs::create_dir(dir.path().join("reports")).expect("mkdir");
    symlink(outside.path(), dir.path().join("reports/linked")).expect("link");
    let refusal = read(dir.path(), Path::new("reports/linked/sub/a.xml"), LIMIT).expect_err("link");
    match &refusal {
        Refusal::LinkedDirectory(linked) => assert_eq!(linked, Path::new("reports/linked")),
        other => panic!("expected a linked directory, got {other:?}"),
    }
    assert_eq!(
        refusal.to_string(),
        "is under reports/linked, a symbolic link (only regular files of the checkout are read)"
    );
}

#[test]
fn a_linked_workspace_is_refused() {
    let dir = workspace();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::write(real.join("a"), "a").expect("write");
    symlink(&real, dir.path().join("link")).expect("link");
    assert!(read(&dir.path().join("link"), Path::new("a"), LIMIT).is_err());
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = workspace();
    mkfifo(&dir.path().join("report.xml"));
    let refusal = read_within_seconds(dir.path(), "report.xml").expect_err("a fifo");
    assert!(matches!(refusal, Refusal::NotRegular("fifo")), "{refusal:?}");
    assert_eq!(refusal.to_string(), "is a fifo, not a regular file");
}

#[test]
fn devices_directories_and_sockets_are_refused() {
    let refusal = read_within_seconds(Path::new("/dev"), "zero").expect_err("a device");
    assert!(matches!(refusal, Refusal::NotRegular("character device")), "{refusal:?}");
    let dir = workspace();
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let _socket =
        std::os::unix::net::UnixListener::bind(dir.path().join("socket")).expect("bind socket");
    assert!(matches!(
        read_within_seconds(dir.path(), "sub"),
        Err(Refusal::NotRegular("directory"))
    ));
    assert!(matches!(
        read_within_seconds(dir.path(), "socket"),
        Err(Refusal::NotRegular("socket"))
    ));
    assert!(matches!(read_within_seconds(dir.path(), "."), Err(Refusal::NotRegular("directory"))));
}

#[test]
fn a_file_over_the_limit_is_refused_before_it_is_read() {
    let dir = workspace();
    std::fs::write(dir.path().join("exact"), vec![b'x'; LIMIT as usize]).expect("write");
    std::fs::write(dir.path().join("over"), vec![b'x'; LIMIT as usize + 1]).expect("write");
    assert_eq!(read(dir.path(), Path::new("exact"), LIMIT).expect("at the limit").len(), 1024);
    let refusal = read(dir.path(), Path::new("over"), LIMIT).expect_err("over the limit");
    assert!(matches!(refusal, Refusal::TooLarge { size: 1025, limit: 1024 }), "{refusal:?}");
    assert_eq!(refusal.to_string(), "is 1025 bytes, more than the limit of 1024");
}

#[test]
fn paths_out_of_the_workspace_are_refused() {
    let dir = workspace();
    for path in ["../x", "a/../../x", "/etc/passwd"] {
        assert!(
            matches!(read(dir.path(), Path::new(path), LIMIT), Err(Refusal::Outside)),
            "{path}"
        );
        assert!(matches!(find(dir.path(), path), Err(Refusal::Outside)), "{path}");
    }
}

#[test]
fn a_search_lists_regular_files_and_names_what_it_refuses() {
    let dir = workspace();
    let outside = workspace();
    std::fs::write(outside.path().join("outside.xml"), "<testsuite/>").expect("write");
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(reports.join("sub/deeper")).expect("mkdir");
    std::fs::create_dir_all(reports.join("dir.xml")).expect("mkdir");
    std::fs::write(reports.join("b.xml"), "b").expect("write");
    std::fs::write(reports.join("a.xml"), "a").expect("write");
    std::fs::write(reports.join("notes.txt"), "n").expect("write");
    std::fs::write(reports.join("sub/deeper/c.xml"), "c").expect("write");
    mkfifo(&reports.join("fifo.xml"));
    symlink("/etc/passwd", reports.join("passwd.xml")).expect("link");
    symlink(outside.path(), reports.join("linked")).expect("link");

    let found = find(dir.path(), "reports/*.xml").expect("search");
    let names = |paths: &[PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    };
    assert_eq!(names(&found.files), ["reports/a.xml", "reports/b.xml"]);
    let refused: Vec<String> =
        found.refused.iter().map(|(path, why)| format!("{} {why}", path.display())).collect();
    assert_eq!(
        refused,
        [
            "reports/fifo.xml is a fifo, not a regular file",
            "reports/passwd.xml is a symbolic link (only regular files of the checkout are read)",
        ]
    );
    assert!(!found.truncated);

    let everywhere = find(dir.path(), "./**/*.xml").expect("search");
    assert_eq!(
        names(&everywhere.files),
        ["reports/a.xml", "reports/b.xml", "reports/sub/deeper/c.xml"],
        "the linked directory is not searched"
    );
    assert_eq!(everywhere.refused.len(), 2);
    let one_level = find(dir.path(), "reports/*/*.xml").expect("search");
    assert!(one_level.files.is_empty() && one_level.refused.is_empty(), "{one_level:?}");
    assert!(find(dir.path(), "nothing/*.xml").expect("search").files.is_empty());
}

#[test]
fn a_search_only_lists_directories_that_can_hold_a_match() {
    let matcher = Matcher::new("reports/*/unit-*.xml").expect("pattern");
    assert!(matcher.may_contain(&[]));
    assert!(matcher.may_contain(&["reports"]));
    assert!(matcher.may_contain(&["reports", "linux"]));
    assert!(!matcher.may_contain(&["reports", "linux", "deeper"]));
    assert!(!matcher.may_contain(&["node_modules"]));
    let any = Matcher::new("out/**/*.xml").expect("pattern");
    assert!(any.may_contain(&["out", "a", "b", "c"]));
    assert!(!any.may_contain(&["src"]));
    assert!(any.matches("out/x.xml") && any.matches("out/a/b/x.xml"));
    assert!(!any.matches("out.xml") && !matcher.matches("reports/a/b/unit-1.xml"));
}

#[test]
fn a_search_stops_at_its_depth_and_entry_limits() {
    let dir = workspace();
    let deep = dir.path().join("d/d/d/d");
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::write(deep.join("x.xml"), "x").expect("write");
    let found = find_within(dir.path(), "**/*.xml", 4, 100).expect("search");
    assert_eq!(found.files, [PathBuf::from("d/d/d/d/x.xml")]);
    let found = find_within(dir.path(), "**/*.xml", 3, 100).expect("search");
    assert!(found.files.is_empty() && !found.truncated, "past the depth limit: {found:?}");

    let wide = dir.path().join("wide");
    std::fs::create_dir(&wide).expect("mkdir");
    for index in 0..20 {
        std::fs::write(wide.join(format!("{index}.xml")), "x").expect("write");
    }
    let found = find_within(dir.path(), "wide/*.xml", 4, 10).expect("search");
    assert!(found.truncated && found.files.is_empty(), "{found:?}");
    let found = find_within(dir.path(), "wide/*.xml", 4, 100).expect("search");
    assert!(!found.truncated && found.files.len() == 20, "{found:?}");
}

#[test]
fn create_writes_inside_the_workspace_and_never_through_a_link() {
    let root = tempfile::tempdir().expect("temp dir");
    let outside = tempfile::tempdir().expect("temp dir");
    let mut file = create(root.path(), Path::new("dist/deep/out.txt")).expect("created");
    std::io::Write::write_all(&mut file, b"made").expect("written");
    drop(file);
    assert_eq!(std::fs::read(root.path().join("dist/deep/out.txt")).expect("read"), b"made");

    std::os::unix::fs::symlink(outside.path(), root.path().join("linked")).expect("link");
    let error = create(root.path(), Path::new("linked/x")).expect_err("refused");
    assert!(matches!(error, Refusal::LinkedDirectory(_)), "{error}");
    std::os::unix::fs::symlink(outside.path().join("f"), root.path().join("f")).expect("link");
    let error = create(root.path(), Path::new("f")).expect_err("refused");
    assert!(matches!(error, Refusal::SymbolicLink), "{error}");
    assert!(create(root.path(), Path::new("../escape")).is_err());
    assert_eq!(std::fs::read_dir(outside.path()).expect("list").count(), 0, "nothing outside");
}
