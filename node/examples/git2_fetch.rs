//! One git2 (libgit2) fetch, the alternative `scripts/bench/fetch.sh` measures the git CLI
//! against: fetches the branches of URL into the existing bare repository MIRROR with the
//! refspec and options the node used before its fetches moved to the git CLI, and prints
//! the seconds it took.
//!
//!     cargo run -p eventide-node --example git2_fetch -- URL MIRROR

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(mirror)) = (args.next(), args.next()) else {
        return Err("usage: git2_fetch URL MIRROR (an existing bare repository)".into());
    };
    let started = Instant::now();
    let repository = git2::Repository::open_bare(&mirror)?;
    let mut remote = repository.remote_anonymous(&url)?;
    let mut options = git2::FetchOptions::new();
    options
        .prune(git2::FetchPrune::On)
        .download_tags(git2::AutotagOption::None)
        .update_fetchhead(false);
    remote.fetch(&["+refs/heads/*:refs/heads/*"], Some(&mut options), None)?;
    println!("git2_fetch_seconds={:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
