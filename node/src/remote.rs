//! How a node authenticates to a watched repository's server: the repository's
//! settings name secrets of the cluster's secret store, opened here with the cluster
//! secret into a [`RemoteAuth`] for the fetch. The observer (on the leader) and every
//! runner build it the same way: the settings and their sealed secrets as a replica has
//! them ([`credentials_for`], this node's or, for a runner that is not a Raft member, the
//! leader's), opened here ([`open_credentials`]).
//!
//! An https token is sent as HTTP basic auth with the user name the forge documents for
//! tokens (`oauth2` on GitLab, `x-access-token` elsewhere: GitHub's, which Gitea takes
//! too, as it reads the password as the token); a token secret whose value is
//! `USER:TOKEN` names its own user (a server that wants one).

use eventide_consensus::auth::{Secret, Zeroizing};
use eventide_consensus::{ForgeKind, RepoId, RepoSettings, State};
use eventide_node::protocol::context::{credentials_for, Credentials, NamedSecret};

use crate::git::{RemoteAuth, DEFAULT_TOKEN_USERNAME};
use crate::secrets::Secrets;

/// The user name sent with a token, unless the secret names one.
fn token_user(forge: Option<ForgeKind>) -> &'static str {
    match forge {
        Some(ForgeKind::Gitlab) => "oauth2",
        Some(ForgeKind::Github) | Some(ForgeKind::Gitea) | None => DEFAULT_TOKEN_USERNAME,
    }
}

/// A token secret's value as (user name, token): `USER:TOKEN`, or the token alone. A
/// token never holds a `:` (GitHub, GitLab and Gitea tokens are letters, digits, `_`
/// and `-`), so the split is unambiguous; the value's surrounding whitespace (a file's
/// last newline) is ignored.
pub fn split_token(value: &[u8]) -> (Option<String>, Zeroizing<Vec<u8>>) {
    let value = value.trim_ascii();
    match value.iter().position(|&byte| byte == b':') {
        Some(colon) if colon > 0 => {
            let user = String::from_utf8_lossy(&value[..colon]).into_owned();
            (Some(user), Zeroizing::new(value[colon + 1..].to_vec()))
        }
        _ => (None, Zeroizing::new(value.to_vec())),
    }
}

/// The credentials for fetching repository `repo`, from its settings. An error names the
/// secret that is missing (never a value), so that the fetch's error says what to set.
pub fn auth_for(
    state: &State,
    secret: Option<&Secret>,
    repo: RepoId,
) -> anyhow::Result<RemoteAuth> {
    auth_from(state, secret, state.repo_settings(repo))
}

fn auth_from(
    state: &State,
    secret: Option<&Secret>,
    settings: &RepoSettings,
) -> anyhow::Result<RemoteAuth> {
    open_credentials(&credentials_for(state, settings), secret)
}

/// Opens `credentials` (as this node's replica or the leader's has them, sealed) with
/// `secret`, this node's cluster secret. An error names the secret that is missing or
/// does not open (never a value).
pub fn open_credentials(
    credentials: &Credentials,
    secret: Option<&Secret>,
) -> anyhow::Result<RemoteAuth> {
    let open = |what: &str, named: &Option<NamedSecret>| open_named(what, named, secret);
    let (username, token) = match open("token", &credentials.token)? {
        Some(value) => {
            let (user, token) = split_token(&value);
            (Some(user.unwrap_or_else(|| token_user(credentials.forge).to_owned())), Some(token))
        }
        None => (None, None),
    };
    Ok(RemoteAuth {
        username,
        token,
        ssh_key: open("ssh key", &credentials.ssh_key)?,
        known_hosts: open("known_hosts", &credentials.known_hosts)?,
        ca_file: credentials.ca_file.as_ref().map(Into::into),
    })
}

/// The clear value of the secret a setting names (the `what`), if it names one.
fn open_named(
    what: &str,
    named: &Option<NamedSecret>,
    secret: Option<&Secret>,
) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    let Some(NamedSecret { name, stored }) = named else { return Ok(None) };
    let Some(secret) = secret else {
        anyhow::bail!(
            "the {what} is the secret {name}, but this node has no cluster secret to open it: start every node with --secret-file"
        )
    };
    let Some(stored) = stored else {
        anyhow::bail!(
            "the {what} is the secret {name}, which is not stored: `eventide-node secret set {name}`"
        )
    };
    match Secrets::open(secret, name, stored) {
        Some(value) => Ok(Some(value)),
        None => anyhow::bail!(
            "the {what} is the secret {name}, which does not open under this node's cluster secret"
        ),
    }
}

#[cfg(test)]
mod tests {
    use eventide_consensus::auth::Sealer;
    use eventide_consensus::{Command, Timestamp};

    use super::*;

    fn cluster() -> Secret {
        Secret::try_new(b"a cluster secret of some length").expect("valid")
    }

    fn state_with(secrets: &[(&str, &[u8])]) -> State {
        let mut state = State::default();
        for (name, value) in secrets {
            let sealed = Sealer::new(&cluster()).seal(name, value).expect("seals");
            let reply = state.apply(&Command::SetSecret {
                name: (*name).to_owned(),
                sealed,
                at: Timestamp(1),
            });
            assert!(reply.refusal().is_none());
        }
        state
    }

    #[test]
    fn a_token_is_sent_with_the_forges_user_name_or_its_own() {
        let state = state_with(&[("GH", b"ghp_abc\n"), ("OWN", b"robot:glpat-xyz")]);
        let github = RepoSettings {
            forge: Some(ForgeKind::Github),
            token: Some("GH".into()),
            ca_file: Some("/etc/ca.pem".into()),
            ..RepoSettings::default()
        };
        let auth = auth_from(&state, Some(&cluster()), &github).expect("opens");
        assert_eq!(auth.username.as_deref(), Some("x-access-token"));
        assert_eq!(auth.token.as_deref().map(Vec::as_slice), Some(&b"ghp_abc"[..]));
        assert_eq!(auth.ca_file.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        let own = RepoSettings { token: Some("OWN".into()), ..RepoSettings::default() };
        let auth = auth_from(&state, Some(&cluster()), &own).expect("opens");
        assert_eq!(auth.username.as_deref(), Some("robot"));
        assert_eq!(auth.token.as_deref().map(Vec::as_slice), Some(&b"glpat-xyz"[..]));
    }

    #[test]
    fn a_missing_secret_is_named_and_no_value_is_shown() {
        let state = state_with(&[("KEY", b"-----BEGIN OPENSSH PRIVATE KEY-----")]);
        let settings = RepoSettings {
            ssh_key: Some("KEY".into()),
            known_hosts: Some("HOSTS".into()),
            ..RepoSettings::default()
        };
        let error =
            auth_from(&state, Some(&cluster()), &settings).expect_err("missing").to_string();
        assert!(error.contains("HOSTS") && error.contains("secret set"), "{error}");
        assert!(!error.contains("BEGIN"), "{error}");
        let error = auth_from(&state, None, &settings).expect_err("no secret").to_string();
        assert!(error.contains("--secret-file"), "{error}");
        let other = Secret::try_new(b"another cluster secret entirely").expect("valid");
        let key_only = RepoSettings { ssh_key: Some("KEY".into()), ..RepoSettings::default() };
        let error = auth_from(&state, Some(&other), &key_only).expect_err("sealed under another");
        assert!(error.to_string().contains("does not open"), "{error}");
        let none = auth_from(&state, None, &RepoSettings::default()).expect("nothing to open");
        assert!(none.token.is_none() && none.ssh_key.is_none() && none.username.is_none());
    }
}
