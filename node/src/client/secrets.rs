//! `secret set`, `secret list` and `secret rm`: the secret store from the command line.
//!
//! A value is read from a file or from stdin, never from an argument, which other users
//! of the machine see in `ps`. Values are text (the API carries them as JSON strings).

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use eventide_api::{RemovedSecretDoc, SecretDoc, SetSecret};
use eventide_consensus::auth::Zeroizing;
use eventide_consensus::state::MAX_SECRET_VALUE_BYTES;

use super::render;
use super::repos::patterns_of;
use super::{Api, NodeArgs};
use crate::clock;

/// `eventide-node secret set NAME [--from-file FILE] [--branches PATTERNS]`.
pub async fn set(
    node: &NodeArgs,
    name: &str,
    from_file: Option<&Path>,
    branches: Option<&str>,
) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let bytes = Zeroizing::new(match from_file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("failed to read the value from {}", path.display()))?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("failed to read the value from stdin")?;
            let kept = strip_trailing_newline(&bytes).len();
            bytes.truncate(kept);
            bytes
        }
    });
    if bytes.len() > MAX_SECRET_VALUE_BYTES {
        anyhow::bail!(
            "a secret value has at most {MAX_SECRET_VALUE_BYTES} bytes, not {}",
            bytes.len()
        );
    }
    let value =
        std::str::from_utf8(&bytes).context("a secret value must be utf-8 text")?.to_owned();
    let branches = branches.map(patterns_of).unwrap_or_default();
    let body = SetSecret { value, branches };
    let answer = api.put(&format!("/api/v1/secrets/{}", path_segment(name)), &body).await;
    // Wipes the copy the request body held.
    drop(Zeroizing::new(body.value));
    let doc: SecretDoc = answer?;
    let verb = if doc.created_at == doc.updated_at { "stored" } else { "updated" };
    println!("{verb} secret {}{}", doc.name, branches_text(&doc.branches));
    Ok(())
}

/// `eventide-node secret list [--json]`.
pub async fn list(node: &NodeArgs, json: bool) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let secrets: Vec<SecretDoc> = api.get("/api/v1/secrets").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&secrets)?);
    } else {
        print!("{}", table(&secrets, clock::now().0));
    }
    Ok(())
}

/// `eventide-node secret rm NAME`.
pub async fn remove(node: &NodeArgs, name: &str) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let removed: RemovedSecretDoc =
        api.delete(&format!("/api/v1/secrets/{}", path_segment(name))).await?;
    println!("removed secret {}", removed.name);
    Ok(())
}

/// One trailing newline (`\n` or `\r\n`), as `echo` or a heredoc leaves it.
fn strip_trailing_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// `name` as one path segment: a valid name needs no escaping, anything else is escaped
/// so that the server sees it whole and says why it is refused.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn table(secrets: &[SecretDoc], now_ms: u64) -> String {
    if secrets.is_empty() {
        return "no secrets are stored; add one with `eventide-node secret set NAME`\n".to_owned();
    }
    let ago = |at: u64| format!("{} ago", render::duration(now_ms.saturating_sub(at)));
    let mut out = format!("{:<40} {:>14} {:>14}  {}\n", "NAME", "CREATED", "UPDATED", "BRANCHES");
    for secret in secrets {
        let branches =
            if secret.branches.is_empty() { "all".to_owned() } else { secret.branches.join(",") };
        out.push_str(&format!(
            "{:<40} {:>14} {:>14}  {}\n",
            secret.name,
            ago(secret.created_at),
            ago(secret.updated_at),
            branches
        ));
    }
    out
}

/// Which jobs get a secret, after its name: nothing for every branch's.
fn branches_text(branches: &[String]) -> String {
    if branches.is_empty() {
        String::new()
    } else {
        format!(" for jobs of branches {}", branches.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_stripped() {
        assert_eq!(strip_trailing_newline(b"value\n"), b"value");
        assert_eq!(strip_trailing_newline(b"value\r\n"), b"value");
        assert_eq!(strip_trailing_newline(b"value\n\n"), b"value\n");
        assert_eq!(strip_trailing_newline(b"value"), b"value");
        assert_eq!(strip_trailing_newline(b""), b"");
    }

    #[test]
    fn names_are_escaped_as_one_path_segment() {
        assert_eq!(path_segment("DEPLOY_KEY"), "DEPLOY_KEY");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn the_table_names_secrets_and_ages() {
        let doc = SecretDoc {
            name: "DEPLOY_KEY".into(),
            created_at: 1_000,
            updated_at: 61_000,
            branches: Vec::new(),
        };
        let restricted = SecretDoc {
            name: "PYPI_TOKEN".into(),
            branches: vec!["main".into(), "release/*".into()],
            ..doc.clone()
        };
        let text = table(&[doc, restricted], 62_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].ends_with("BRANCHES"), "{text}");
        assert!(lines[1].starts_with("DEPLOY_KEY") && lines[1].ends_with("all"), "{text}");
        assert!(lines[2].starts_with("PYPI_TOKEN") && lines[2].ends_with("main,release/*"));
        assert!(text.contains("1m01s ago") && text.contains("1.0s ago"), "{text}");
        assert!(table(&[], 0).contains("no secrets"));
        assert_eq!(branches_text(&[]), "");
        assert_eq!(branches_text(&["main".into()]), " for jobs of branches main");
    }
}
