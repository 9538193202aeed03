//! Watched repositories: the one canonical form of a repository url, how a user's
//! repository argument becomes it, and registering the `--repo` flags once the node is
//! in a cluster.
//!
//! The cluster stores and compares urls only in canonical form ([`normalize_url`]): a
//! local repository is its absolute path, without `.` or `..` segments, repeated or
//! trailing slashes (`/a`, `/a/`, `/a/./` and `file:///a` are all `/a`); any other url is
//! kept with its scheme and host in lower case, without a default port and without a
//! trailing slash (an scp-like `git@host:team/app.git` stays in that form, host in lower
//! case). Credentials never go in a url: the secret store holds them. A relative path
//! has no meaning to a cluster (each node would resolve it
//! against its own working directory), so it is refused there; only the process a person
//! typed it into resolves it ([`resolve_argument`]: the CLI, and a node's `--repo` flags).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use eventide_consensus::network::Writer;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{Command, Refusal, Reply, RepoId, State};
use tracing::{info, warn};
use url::Url;

use crate::clock;

/// The canonical form of a repository url (see the module doc). Refuses relative paths,
/// control characters, `file://` urls naming another host, schemes git is not allowed to
/// use, and credentials in the url (which would end up in the replicated state, in logs
/// and in other users' view of a process's arguments); an error never repeats a
/// password or token it found.
pub fn normalize_url(argument: &str) -> anyhow::Result<String> {
    let argument = argument.trim();
    if argument.is_empty() {
        bail!("empty repository url");
    }
    let shown = redact_userinfo(argument);
    if argument.chars().any(char::is_control) {
        bail!("repository url {shown:?} contains control characters");
    }
    if !argument.contains("://") {
        if argument.starts_with('/') {
            return Ok(clean_absolute_path(argument));
        }
        if let Some(canonical) = normalize_scp_like(argument)? {
            return Ok(canonical);
        }
        bail!(
            "repository path {argument} is relative: give an absolute path or a url \
             (file:///srv/app, https://host/app.git, git@host:app.git)"
        );
    }
    let mut url =
        Url::parse(argument).with_context(|| format!("repository url {shown} is not a url"))?;
    let scheme = url.scheme().to_owned();
    if !SCHEMES.contains(&scheme.as_str()) {
        bail!(
            "repository url {shown}: scheme {scheme} is not supported \
             (https, ssh, http, git, file)"
        );
    }
    let web = scheme == "http" || scheme == "https";
    if url.password().is_some() || (web && !url.username().is_empty()) {
        bail!(
            "repository url {shown} contains credentials: put the token in the secret store \
             and name it with --token"
        );
    }
    if scheme == "file" {
        if let Some(host) = url.host_str().filter(|host| !host.is_empty()) {
            bail!("repository url {argument} names host {host}: a file url is a path on each node");
        }
        let path = url
            .to_file_path()
            .ok()
            .and_then(|path| path.to_str().map(str::to_owned))
            .with_context(|| format!("repository url {argument} is not a local path"))?;
        return Ok(clean_absolute_path(&path));
    }
    if !web {
        // The url crate keeps the host of a scheme it does not know as written.
        if let Some(host) = url.host_str().map(str::to_ascii_lowercase) {
            url.set_host(Some(&host))
                .with_context(|| format!("repository url {shown} has an invalid host"))?;
        }
        let default_port = if scheme == "git" { 9418 } else { 22 };
        if url.port() == Some(default_port) {
            let _ = url.set_port(None);
        }
    }
    let path = url.path().trim_end_matches('/').to_owned();
    if !path.is_empty() {
        url.set_path(&path);
    }
    Ok(url.to_string())
}

/// Whether git reads `argument` as an scp-like ssh url: a `:` before any `/`.
fn looks_scp_like(argument: &str) -> bool {
    argument.find(':').is_some_and(|colon| !argument[..colon].contains('/'))
}

/// The url schemes a repository may have: what the fetch lets git use.
const SCHEMES: &[&str] = &["https", "ssh", "git+ssh", "ssh+git", "http", "git", "file"];

/// The canonical form of an scp-like url (`[user@]host:path`, git's short ssh form):
/// kept in that form, host in lower case, without trailing slashes; `None` if
/// `argument` is not one (no `:` before the first `/`).
fn normalize_scp_like(argument: &str) -> anyhow::Result<Option<String>> {
    let Some(colon) = argument.find(':') else { return Ok(None) };
    if argument[..colon].contains('/') {
        return Ok(None);
    }
    let (authority, path) = (&argument[..colon], &argument[colon + 1..]);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    // `user:password@host:path`: the first `:` ends the "host" and an `@` follows.
    let before_slash = path.split('/').next().unwrap_or_default();
    if user.is_none() && before_slash.contains('@') {
        bail!(
            "repository url {} contains credentials: put the token in the secret store and \
             name it with --token",
            redact_userinfo(argument)
        );
    }
    let word = |text: &str| {
        !text.is_empty()
            && !text.starts_with('-')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "-._~[]".contains(c))
    };
    if !word(host) || user.is_some_and(|user| !word(user)) {
        bail!("repository url {argument}: {authority} is not a valid [user@]host");
    }
    let path = path.trim_end_matches('/');
    if path.is_empty() || path.starts_with(':') {
        bail!("repository url {argument} names no repository path");
    }
    let user = user.map(|user| format!("{user}@")).unwrap_or_default();
    Ok(Some(format!("{user}{}:{path}", host.to_ascii_lowercase())))
}

/// `argument` with any password (and for http, any user name, which may be a token)
/// replaced, for error messages.
fn redact_userinfo(argument: &str) -> String {
    if let Some(scheme_end) = argument.find("://") {
        let (scheme, rest) = (&argument[..scheme_end], &argument[scheme_end + 3..]);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
            let kept = match userinfo.split_once(':') {
                _ if web => "***".to_owned(),
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            return format!("{scheme}://{kept}@{}", &rest[at + 1..]);
        }
        return argument.to_owned();
    }
    // scp-like `user:password@host:path`.
    match argument.split_once('@') {
        Some((userinfo, rest)) if userinfo.contains(':') && !userinfo.contains('/') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:***@{rest}")
        }
        _ => argument.to_owned(),
    }
}

/// A repository argument as a person typed it into this process: a relative path is
/// taken relative to `cwd`, and a local path that exists is resolved through symbolic
/// links; then [`normalize_url`].
pub fn resolve_argument(argument: &str, cwd: &Path) -> anyhow::Result<String> {
    let argument = argument.trim();
    if argument.is_empty() || argument.contains("://") || looks_scp_like(argument) {
        return normalize_url(argument);
    }
    let joined = cwd.join(argument);
    let path = std::fs::canonicalize(&joined).unwrap_or(joined);
    let text = path
        .to_str()
        .with_context(|| format!("repository path {} is not UTF-8", path.display()))?;
    normalize_url(text)
}

/// The watched repository whose url has the canonical form `url`: the one stored with
/// exactly that url, else one stored in another form before urls were normalised.
pub fn find_watched(state: &State, url: &str) -> Option<RepoId> {
    if let Some(repo) = state.repo_by_url(url) {
        return Some(repo.id);
    }
    let same = |stored: &str| normalize_url(stored).is_ok_and(|canonical| canonical == url);
    state.repos().find(|repo| same(&repo.url)).map(|repo| repo.id)
}

/// `/`-separated `path` (absolute) without empty, `.` and `..` segments; `..` at the
/// root stays at the root, as the kernel has it.
fn clean_absolute_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Adds every `--repo` (`arguments`) to the cluster that it does not watch yet, as the
/// replica `state_machine` shows it. Runs in the background; retries until a leader
/// accepts the writes.
pub async fn add_configured(
    arguments: Vec<String>,
    state_machine: StateMachineStore,
    writer: Writer,
) {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(error) => {
            warn!(error = %error, "--repo ignored: the working directory is unreadable");
            return;
        }
    };
    let mut urls = Vec::new();
    for argument in &arguments {
        match resolve_argument(argument, &cwd) {
            Ok(url) => urls.push(url),
            Err(error) => warn!(error = %format!("{error:#}"), "--repo ignored"),
        }
    }
    for url in urls {
        loop {
            if state_machine.read(|state| find_watched(state, &url).is_some()) {
                break;
            }
            let command = Command::AddRepo { url: url.clone(), at: clock::now() };
            match writer.write(command).await {
                Ok(Reply::RepoAdded { repo }) => {
                    info!(repo = %repo, url = %url, "repository added");
                    break;
                }
                Ok(Reply::Refused(Refusal::DuplicateRepo { .. })) => break,
                Ok(other) => {
                    warn!(url = %url, reply = ?other, "repository not added");
                    break;
                }
                Err(error) => {
                    info!(url = %url, error = %error, "waiting for a leader to add the repository");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eventide_consensus::Timestamp;

    use super::*;

    #[test]
    fn every_spelling_of_a_local_repository_is_one_url() {
        for spelling in [
            "/a",
            "/a/",
            "//a//",
            "/a/.",
            "/a/b/..",
            " /a ",
            "file:///a",
            "file:///a/",
            "file://localhost/a",
            "file:///x/../a",
        ] {
            assert_eq!(normalize_url(spelling).expect(spelling), "/a", "{spelling}");
        }
        assert_eq!(normalize_url("/").expect("root"), "/");
        assert_eq!(normalize_url("/..").expect("above the root"), "/");
        assert_eq!(normalize_url("file:///srv/my%20app").expect("escaped"), "/srv/my app");
    }

    #[test]
    fn remote_urls_lose_only_what_does_not_name_the_repository() {
        let cases = [
            ("http://Git.Example.com:80/x.git/", "http://git.example.com/x.git"),
            ("http://127.0.0.1:8080/x.git", "http://127.0.0.1:8080/x.git"),
            ("http://host/a/./b/../x.git", "http://host/a/x.git"),
            ("HTTPS://host/x", "https://host/x"),
            ("http://host", "http://host/"),
            ("git://host/x.git", "git://host/x.git"),
            ("ssh://git@host/x.git/", "ssh://git@host/x.git"),
            ("ssh://git@Host.Example:22/x.git", "ssh://git@host.example/x.git"),
            ("ssh://root@127.0.0.1:2222/srv/x.git", "ssh://root@127.0.0.1:2222/srv/x.git"),
            ("git@GitHub.com:Team/App.git", "git@github.com:Team/App.git"),
            ("git@host:app.git/", "git@host:app.git"),
            ("host:/srv/app.git", "host:/srv/app.git"),
            (
                "https://git.example.com:8443/team/app.git",
                "https://git.example.com:8443/team/app.git",
            ),
        ];
        for (given, canonical) in cases {
            assert_eq!(normalize_url(given).expect(given), canonical, "{given}");
        }
    }

    #[test]
    fn relative_paths_and_malformed_urls_are_clear_errors() {
        let cases = [
            ("", "empty repository url"),
            ("  ", "empty repository url"),
            ("a", "repository path a is relative"),
            ("./a", "repository path ./a is relative"),
            ("../a", "repository path ../a is relative"),
            ("a/b:c", "is relative"),
            ("-oProxyCommand=x:app.git", "not a valid [user@]host"),
            ("git@host:", "names no repository path"),
            ("ext::sh -c x", "names no repository path"),
            ("svn://host/x", "scheme svn is not supported"),
            ("/a\nb", "contains control characters"),
            ("x\u{85}y://host/a", "contains control characters"),
            ("http://", "is not a url"),
            ("file://other/a", "names host other"),
        ];
        for (given, expected) in cases {
            let error = normalize_url(given).expect_err(given).to_string();
            assert!(error.contains(expected), "{given:?}: {error}");
        }
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_being_repeated() {
        let cases = [
            "https://user:pw-secret@host/x.git",
            "https://pw-secret@host/x.git",
            "http://x-access-token:pw-secret@host/x.git",
            "ssh://git:pw-secret@host/x.git",
            "git:pw-secret@host:x.git",
            "https://user:pw-secret@/x.git",
        ];
        for given in cases {
            let error = format!("{:#}", normalize_url(given).expect_err(given));
            assert!(!error.contains("pw-secret"), "{given}: {error}");
            assert!(
                error.contains("put the token in the secret store and name it with --token")
                    || error.contains("is not a url"),
                "{given}: {error}"
            );
        }
        // A user name is how ssh says who logs in; it is no secret.
        assert_eq!(normalize_url("ssh://git@host/x").expect("user"), "ssh://git@host/x");
    }

    #[test]
    fn arguments_resolve_against_the_given_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cwd = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
        std::fs::create_dir(cwd.join("app")).expect("mkdir");
        let app = cwd.join("app").to_string_lossy().into_owned();
        assert_eq!(resolve_argument("app", &cwd).expect("relative"), app);
        assert_eq!(resolve_argument("./app/", &cwd).expect("relative, slash"), app);
        assert_eq!(resolve_argument(&format!("{app}/"), Path::new("/")).expect("absolute"), app);
        // A path that does not exist (yet) is still made absolute.
        let missing = cwd.join("missing").to_string_lossy().into_owned();
        assert_eq!(resolve_argument("missing/", &cwd).expect("missing"), missing);
        // A symbolic link is the repository it points to.
        std::os::unix::fs::symlink(cwd.join("app"), cwd.join("link")).expect("symlink");
        assert_eq!(resolve_argument("link", &cwd).expect("link"), app);
        // Urls are not paths.
        assert_eq!(resolve_argument("file:///a/", &cwd).expect("file url"), "/a");
        assert_eq!(resolve_argument("http://h/x/", &cwd).expect("url"), "http://h/x");
        assert_eq!(resolve_argument("git@h:x.git", &cwd).expect("scp-like"), "git@h:x.git");
    }

    #[test]
    fn a_repository_stored_before_normalisation_is_found_by_its_canonical_url() {
        let mut state = State::default();
        for url in ["/srv/legacy/", "/srv/exact", "file:///srv/old"] {
            let reply = state.apply(&Command::AddRepo { url: url.into(), at: Timestamp(1) });
            assert!(matches!(reply, Reply::RepoAdded { .. }), "{reply:?}");
        }
        assert_eq!(find_watched(&state, "/srv/legacy"), Some(RepoId(1)));
        assert_eq!(find_watched(&state, "/srv/exact"), Some(RepoId(2)));
        assert_eq!(find_watched(&state, "/srv/old"), Some(RepoId(3)));
        assert_eq!(find_watched(&state, "/srv/other"), None);
    }
}
