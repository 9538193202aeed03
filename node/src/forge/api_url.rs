//! A forge's API root and a repository's project on it, from the repository's url
//! (https, ssh or scp-like), for when its settings name no API url.

use anyhow::{bail, Context};
use eventide_consensus::ForgeKind;
use url::Url;

/// Where a repository's host and path start, for the three shapes of git url:
/// `https://host[:port]/path`, `ssh://[user@]host[:port]/path` and scp-like
/// `[user@]host:path`.
struct RepoLocation {
    /// `http` or `https` for web urls; `None` for ssh ones.
    web_scheme: Option<String>,
    host: String,
    /// The web port, if the url names one (ssh ports are not the API's).
    port: Option<u16>,
    path: String,
}

fn locate(repo_url: &str) -> anyhow::Result<RepoLocation> {
    let repo_url = repo_url.trim();
    if repo_url.contains("://") {
        let url = Url::parse(repo_url)
            .with_context(|| format!("repository url {repo_url:?} is not a valid url"))?;
        let host = url
            .host_str()
            .with_context(|| format!("repository url {repo_url:?} has no host"))?
            .to_ascii_lowercase();
        let (web_scheme, port) = match url.scheme() {
            "http" | "https" => (Some(url.scheme().to_owned()), url.port()),
            "ssh" | "git+ssh" | "git" => (None, None),
            other => bail!(
                "repository url {repo_url:?} has scheme {other:?}: a forge's repository is \
                 reached over https, http, ssh or git"
            ),
        };
        return Ok(RepoLocation { web_scheme, host, port, path: url.path().to_owned() });
    }
    // scp-like: [user@]host:path, with no slash before the colon.
    let (authority, path) = repo_url.split_once(':').with_context(|| {
        format!("repository url {repo_url:?} is neither a url nor of the form user@host:path")
    })?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || host.contains('/') || path.is_empty() {
        bail!("repository url {repo_url:?} is neither a url nor of the form user@host:path");
    }
    Ok(RepoLocation {
        web_scheme: None,
        host: host.to_ascii_lowercase(),
        port: None,
        path: path.to_owned(),
    })
}

/// The API root of the forge hosting `repo_url`, for when the repository's settings
/// name none: `https://api.github.com` for github.com and `https://HOST/api/v3` for
/// GitHub Enterprise; `https://HOST/api/v4` for GitLab; `https://HOST/api/v1` for
/// Gitea. A forge served on plain http (the url says `http://`) keeps http and its
/// port. A forge installed under a sub-path (`https://host/gitlab/`) needs its API url
/// set by hand.
pub fn default_api_url(forge: ForgeKind, repo_url: &str) -> anyhow::Result<String> {
    let location = locate(repo_url)?;
    let scheme = location.web_scheme.as_deref().unwrap_or("https");
    let authority = match location.port {
        Some(port) => format!("{}:{port}", location.host),
        None => location.host.clone(),
    };
    Ok(match forge {
        ForgeKind::Github if location.host == "github.com" || location.host == "www.github.com" => {
            "https://api.github.com".to_owned()
        }
        ForgeKind::Github => format!("{scheme}://{authority}/api/v3"),
        ForgeKind::Gitlab => format!("{scheme}://{authority}/api/v4"),
        ForgeKind::Gitea => format!("{scheme}://{authority}/api/v1"),
    })
}

/// The project part of a status url, from the repository's url: `owner/repo` on GitHub
/// and Gitea; on GitLab the url-encoded full path (`group%2Fsub%2Fproject`), which
/// GitLab takes in place of a numeric id. A trailing `.git` or `/` is dropped.
pub fn project_of(forge: ForgeKind, repo_url: &str) -> anyhow::Result<String> {
    let location = locate(repo_url)?;
    let path = location.path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    for segment in &segments {
        let allowed =
            segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
        if segment.is_empty() || *segment == "." || *segment == ".." || !allowed {
            bail!(
                "repository url {repo_url:?} has path {path:?}, which does not name a \
                 project (letters, digits, '-', '_' and '.' between slashes)"
            );
        }
    }
    match forge {
        ForgeKind::Github | ForgeKind::Gitea if segments.len() != 2 => bail!(
            "repository url {repo_url:?} has path {path:?}: a {forge} repository is \
             owner/repo (set the API url by hand if the forge lives under a sub-path)"
        ),
        ForgeKind::Github | ForgeKind::Gitea => Ok(segments.join("/")),
        ForgeKind::Gitlab if segments.len() < 2 => bail!(
            "repository url {repo_url:?} has path {path:?}: a GitLab project is \
             group/project or group/subgroup/project"
        ),
        ForgeKind::Gitlab => Ok(segments.join("%2F")),
    }
}

/// The API root to post `repo_url`'s statuses to: `configured` (the repository's
/// `api_url` setting) if given, else [`default_api_url`]; either must be an http or
/// https url.
pub fn api_url_for(
    forge: ForgeKind,
    configured: Option<&str>,
    repo_url: &str,
) -> anyhow::Result<Url> {
    let text = match configured.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => text.to_owned(),
        None => default_api_url(forge, repo_url)?,
    };
    let url = Url::parse(&text).with_context(|| {
        format!("API url {text:?} is not a valid url: set the repository's api_url")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("API url {text:?} is not an http or https url with a host: set the repository's api_url");
    }
    Ok(url)
}
