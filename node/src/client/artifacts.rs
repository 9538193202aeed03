//! `artifact list JOB` and `artifact get JOB NAME`: a job's artifacts from any node.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use eventide_api::ArtifactDoc;
use eventide_node::units::format_size;

use super::{Api, NodeArgs};

pub async fn list(node: &NodeArgs, job: u64, json: bool) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let artifacts: Vec<ArtifactDoc> = api.get(&format!("/api/v1/jobs/{job}/artifacts")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&artifacts)?);
        return Ok(());
    }
    if artifacts.is_empty() {
        println!("job {job} stored no artifacts");
        return Ok(());
    }
    let names = super::jobs::node_names(&api).await;
    println!("{:<40} {:>10} {:<12} HOLDERS", "NAME", "SIZE", "SHA256");
    for artifact in &artifacts {
        let holders: Vec<&str> = artifact
            .holders
            .iter()
            .map(|id| names.get(id).map_or(id.as_str(), String::as_str))
            .collect();
        println!(
            "{:<40} {:>10} {:<12} {}",
            artifact.name,
            format_size(artifact.size),
            &artifact.sha256[..artifact.sha256.len().min(12)],
            holders.join(",")
        );
    }
    Ok(())
}

/// Writes the artifact to `output` (default: its base name in the current directory),
/// never over an existing file unless `force`, with progress on stderr for large ones.
pub async fn get(
    node: &NodeArgs,
    job: u64,
    name: &str,
    output: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<()> {
    let target = output.unwrap_or_else(|| {
        PathBuf::from(
            Path::new(name).file_name().map_or_else(|| "artifact".into(), |n| n.to_owned()),
        )
    });
    if target.exists() && !force {
        bail!("{} exists; pass --force to replace it", target.display());
    }
    let api = Api::new(node)?;
    let mut response = api.stream(&format!("/api/v1/jobs/{job}/artifacts/{name}")).await?;
    let total = response.content_length();
    let partial = target.with_extension("part");
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("failed to create {}", partial.display()))?;
    let (mut written, mut shown) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await.context("the download broke off")? {
        file.write_all(&chunk).with_context(|| format!("failed to write {}", partial.display()))?;
        written += chunk.len() as u64;
        if written - shown >= 16 * 1024 * 1024 {
            shown = written;
            let of = total.map(|t| format!(" of {}", format_size(t))).unwrap_or_default();
            eprintln!("{}{of}", format_size(written));
        }
    }
    file.sync_all()?;
    if let Some(total) = total.filter(|&t| t != written) {
        let _ = std::fs::remove_file(&partial);
        bail!("got {written} bytes of {total}");
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("failed to write {}", target.display()))?;
    eprintln!("wrote {} ({})", target.display(), format_size(written));
    Ok(())
}
