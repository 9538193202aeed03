//! The files a step stores: what its patterns match in its workspace, regular files
//! only (read through `runner::workspace`, so never through a link and never outside the
//! workspace), within the size and count limits; and putting a job's inputs into its
//! workspace the same safe way.
//!
//! Blocking: call on the blocking pool.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use eventide_node::units::format_size;

use super::{ArtifactSettings, Store};
use crate::runner::workspace::{self, Refusal};

/// What a step's patterns gave.
#[derive(Debug, Default)]
pub struct Collected {
    /// Name (relative to the workspace), SHA-256 and size of each stored file.
    pub files: Vec<(String, String, u64)>,
    /// For the job's log: patterns that matched nothing, entries that were not stored.
    pub notes: Vec<String>,
}

/// Stores the files `patterns` match in `workspace`. An error (a file or the build over
/// its limit, too many files, a disk that cannot take them) is the job's error message.
pub fn collect(
    workspace: &Path,
    patterns: &[String],
    settings: &ArtifactSettings,
    build_bytes_before: u64,
    store: &Store,
) -> Result<Collected, String> {
    let mut collected = Collected::default();
    let mut names: BTreeSet<PathBuf> = BTreeSet::new();
    for pattern in patterns {
        let found = workspace::find(workspace, pattern)
            .map_err(|refusal| format!("artifacts pattern {pattern:?}: {refusal}"))?;
        if found.files.is_empty() && found.refused.is_empty() {
            collected.notes.push(format!("artifacts pattern {pattern:?} matched no file"));
        }
        for (path, refusal) in found.refused {
            collected.notes.push(format!("{} {refusal}: not stored", path.display()));
        }
        if found.truncated {
            collected.notes.push(format!(
                "artifacts pattern {pattern:?}: the workspace is too large to search whole"
            ));
        }
        names.extend(found.files);
    }
    if names.len() > ArtifactSettings::MAX_FILES {
        return Err(format!(
            "the artifacts patterns match {} files, at most {}",
            names.len(),
            ArtifactSettings::MAX_FILES
        ));
    }
    let mut total = build_bytes_before;
    for path in names {
        let name = artifact_name(&path)?;
        let (file, size) = workspace::open(workspace, &path, settings.max_file).map_err(
            |refusal| match refusal {
                Refusal::TooLarge { size, limit } => format!(
                    "artifact {name} is {}, more than --artifact-max-file {}",
                    format_size(size),
                    format_size(limit)
                ),
                other => format!("artifact {name} {other}"),
            },
        )?;
        total = total.saturating_add(size);
        if total > settings.max_build {
            return Err(format!(
                "artifact {name} makes the build's artifacts {}, more than --artifact-max-build {}",
                format_size(total),
                format_size(settings.max_build)
            ));
        }
        let (sha256, stored) = store
            .put(&mut file.take(settings.max_file.saturating_add(1)), settings.max_file)
            .map_err(|error| format!("failed to store artifact {name}: {error}"))?;
        collected.files.push((name, sha256, stored));
    }
    Ok(collected)
}

/// Copies the stored file `local` to `name` in `workspace`.
pub fn place(local: &Path, workspace: &Path, name: &str) -> Result<(), String> {
    let mut target = workspace::create(workspace, Path::new(name)).map_err(|refusal| {
        format!("artifact {name} cannot be put in the workspace: it {refusal}")
    })?;
    let mut source = std::fs::File::open(local)
        .map_err(|error| format!("failed to open the stored artifact {name}: {error}"))?;
    std::io::copy(&mut source, &mut target)
        .map_err(|error| format!("failed to write artifact {name} into the workspace: {error}"))?;
    Ok(())
}

/// The name an artifact is indexed by: its path with `/` separators, as UTF-8.
fn artifact_name(path: &Path) -> Result<String, String> {
    let parts: Option<Vec<&str>> = path.components().map(|c| c.as_os_str().to_str()).collect();
    let name = parts
        .map(|parts| parts.join("/"))
        .ok_or_else(|| format!("artifact {} has a name that is not UTF-8", path.display()))?;
    if name.len() > eventide_consensus::state::MAX_ARTIFACT_NAME_BYTES {
        return Err(format!("artifact {name} has a name longer than 255 bytes"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ArtifactSettings {
        ArtifactSettings { max_file: 100, max_build: 150, ..ArtifactSettings::DEFAULT }
    }

    #[test]
    fn matching_regular_files_are_stored_and_links_and_fifos_are_not() {
        let workspace = tempfile::tempdir().expect("temp dir");
        let data = tempfile::tempdir().expect("temp dir");
        let store = Store::new(data.path());
        let root = workspace.path();
        std::fs::create_dir_all(root.join("dist/sub")).expect("mkdir");
        std::fs::write(root.join("dist/a.whl"), b"wheel").expect("write");
        std::fs::write(root.join("dist/sub/b.whl"), b"other").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", root.join("dist/evil.whl")).expect("link");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("dist/pipe.whl"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("fifo");
        let patterns = vec!["dist/**/*.whl".to_owned(), "nothing/*".to_owned()];
        let collected = collect(root, &patterns, &settings(), 0, &store).expect("collected");
        let names: Vec<&str> = collected.files.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(names, ["dist/a.whl", "dist/sub/b.whl"]);
        assert!(store.path(&collected.files[0].1).is_some());
        let notes = collected.notes.join("\n");
        assert!(notes.contains("evil.whl is a symbolic link"), "{notes}");
        assert!(notes.contains("pipe.whl is a fifo"), "{notes}");
        assert!(notes.contains("\"nothing/*\" matched no file"), "{notes}");
    }

    #[test]
    fn a_file_or_a_build_over_its_limit_is_an_error() {
        let workspace = tempfile::tempdir().expect("temp dir");
        let data = tempfile::tempdir().expect("temp dir");
        let store = Store::new(data.path());
        std::fs::write(workspace.path().join("big"), vec![b'x'; 101]).expect("write");
        std::fs::write(workspace.path().join("small"), vec![b'x'; 60]).expect("write");
        let error = collect(workspace.path(), &["big".into()], &settings(), 0, &store)
            .expect_err("too big");
        assert!(error.contains("more than --artifact-max-file"), "{error}");
        let error = collect(workspace.path(), &["small".into()], &settings(), 100, &store)
            .expect_err("the build is over");
        assert!(error.contains("more than --artifact-max-build"), "{error}");
        assert!(collect(workspace.path(), &["small".into()], &settings(), 0, &store).is_ok());
    }

    #[test]
    fn an_input_is_placed_at_its_name_and_never_through_a_link() {
        let workspace = tempfile::tempdir().expect("temp dir");
        let outside = tempfile::tempdir().expect("temp dir");
        let local = outside.path().join("blob");
        std::fs::write(&local, b"content").expect("write");
        place(&local, workspace.path(), "dist/out.txt").expect("placed");
        let placed = std::fs::read(workspace.path().join("dist/out.txt")).expect("read");
        assert_eq!(placed, b"content");
        std::os::unix::fs::symlink(outside.path(), workspace.path().join("up")).expect("link");
        let error = place(&local, workspace.path(), "up/x").expect_err("refused");
        assert!(error.contains("cannot be put in the workspace"), "{error}");
    }
}
