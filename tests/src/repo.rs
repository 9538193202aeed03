//! Example git repositories for end-to-end tests, driven with the `git` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A work tree in a temp dir, on branch `main`.
pub struct GitRepo {
    dir: TempDir,
}

impl GitRepo {
    pub fn new() -> GitRepo {
        let dir = tempfile::Builder::new().prefix("eventide-repo-").tempdir().expect("temp dir");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.path().display().to_string()
    }

    /// Runs git in the work tree and returns its trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "user.name=eventide-test", "-c", "user.email=test@example.invalid"])
            .args(["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"])
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("run git");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn write(&self, path: &str, contents: &str) {
        let full: PathBuf = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(full, contents).expect("write file");
    }

    /// Writes `.eventide.toml` with `command` (and optional extra `[test]` lines).
    pub fn configure(&self, command: &str, extra: &str) {
        let escaped = command.replace('\\', "\\\\").replace('"', "\\\"");
        self.write(".eventide.toml", &format!("[test]\ncommand = \"{escaped}\"\n{extra}"));
    }

    /// Commits everything with `message`; returns the new commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        GitRepo::new()
    }
}
