//! This node's artifact files: `DATA_DIR/artifacts/<sha256>`, each written to a
//! temporary name, checked against its SHA-256, flushed and renamed into place, so a
//! name in the store always holds exactly the content it names. Files older than the
//! retention are deleted; nothing else ever changes one.
//!
//! Every function here blocks on the file system: call it on the blocking pool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use eventide_node::protocol::artifacts::is_sha256_hex;

/// What a received copy is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// This node is recorded as holding it (a producer's copy): flushed to disk before
    /// it is acknowledged, so that the record stays true through a crash.
    Holder,
    /// Fetched for a job or a download and recorded nowhere: not flushed (a copy lost to
    /// a crash is fetched again, and every copy is checked against its hash).
    Cache,
}

/// Where received chunks gather before the whole file is checked.
const PARTS: &str = "parts";

/// The store of one node.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store { dir: data_dir.join("artifacts") }
    }

    /// The file holding `sha256`, if this node holds it.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        let path = self.dir.join(sha256);
        path.is_file().then_some(path)
    }

    /// Copies everything `reader` gives into the store (at most `limit` bytes); returns
    /// its SHA-256 and size.
    pub fn put(&self, reader: &mut impl Read, limit: u64) -> io::Result<(String, u64)> {
        let parts = self.dir.join(PARTS);
        std::fs::create_dir_all(&parts)?;
        let name = format!("put-{}-{:016x}.tmp", std::process::id(), fastrand::u64(..));
        let temporary = parts.join(name);
        match write_hashed(reader, limit, &temporary) {
            Ok((sha256, size)) => {
                std::fs::rename(&temporary, self.dir.join(&sha256))?;
                Ok((sha256, size))
            }
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                Err(error)
            }
        }
    }

    /// Adds a received chunk of `sha256`; `Ok(None)` when the whole file is in and
    /// checked, `Ok(Some(offset))` for the next chunk expected. A chunk out of order is
    /// answered with the offset wanted; content that does not match its name is refused
    /// and dropped. `keep` says whether the whole file is flushed to disk before it is
    /// kept.
    pub fn put_chunk(
        &self,
        sha256: &str,
        size: u64,
        offset: u64,
        data: &[u8],
        keep: Keep,
    ) -> io::Result<Option<u64>> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::other("not a sha256"));
        }
        if self.path(sha256).is_some() {
            return Ok(None);
        }
        let parts = self.dir.join(PARTS);
        std::fs::create_dir_all(&parts)?;
        let part = parts.join(format!("{sha256}.part"));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&part)?;
        let have = file.metadata()?.len();
        if offset != have {
            return Ok(Some(have));
        }
        if have + data.len() as u64 > size {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(io::Error::other("more bytes than the size announced"));
        }
        file.write_all(data)?;
        if have + (data.len() as u64) < size {
            return Ok(Some(have + data.len() as u64));
        }
        if keep == Keep::Holder {
            file.sync_all()?;
        }
        drop(file);
        let mut whole = File::open(&part)?;
        whole.seek(SeekFrom::Start(0))?;
        let actual = sha256_of(&mut whole)?;
        if actual != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(io::Error::other(format!("content is {actual}, not {sha256}")));
        }
        std::fs::rename(&part, self.dir.join(sha256))?;
        Ok(None)
    }

    /// Up to `max` bytes of `sha256` from `offset`, and its size; `None` if not held.
    pub fn read_chunk(
        &self,
        sha256: &str,
        offset: u64,
        max: usize,
    ) -> io::Result<Option<(u64, Vec<u8>)>> {
        let Some(path) = self.path(sha256) else { return Ok(None) };
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        file.seek(SeekFrom::Start(offset.min(size)))?;
        let mut data = Vec::with_capacity(max.min(size.saturating_sub(offset) as usize));
        file.take(max as u64).read_to_end(&mut data)?;
        Ok(Some((size, data)))
    }

    /// Deletes the files (and stale parts) last changed more than `retention` ago;
    /// returns how many.
    pub fn prune(&self, retention: Duration, now: SystemTime) -> usize {
        let mut removed = 0;
        for dir in [self.dir.clone(), self.dir.join(PARTS)] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let Ok(metadata) = entry.metadata() else { continue };
                if !metadata.is_file() {
                    continue;
                }
                let old = metadata
                    .modified()
                    .ok()
                    .and_then(|at| now.duration_since(at).ok())
                    .is_some_and(|age| age > retention);
                if old && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// Writes everything `reader` gives to a new file at `path` (at most `limit` bytes),
/// flushed to disk; returns its SHA-256 and size.
fn write_hashed(reader: &mut impl Read, limit: u64, path: &Path) -> io::Result<(String, u64)> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        if size > limit {
            return Err(io::Error::other(format!("more than the limit of {limit} bytes")));
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
    }
    file.sync_all()?;
    Ok((hex(&hasher.finalize()), size))
}

/// The SHA-256 of everything `reader` gives, in lowercase hex.
pub fn sha256_of(reader: &mut impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_file_is_named_by_its_content_and_read_back_in_chunks() {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(data_dir.path());
        let (sha, size) = store.put(&mut &b"hello artifacts"[..], 1024).expect("stored");
        assert_eq!(size, 15);
        assert_eq!(sha, sha256_of(&mut &b"hello artifacts"[..]).expect("hashed"));
        let (total, first) = store.read_chunk(&sha, 0, 5).expect("read").expect("held");
        assert_eq!((total, first.as_slice()), (15, &b"hello"[..]));
        let (_, rest) = store.read_chunk(&sha, 5, 100).expect("read").expect("held");
        assert_eq!(rest, b" artifacts");
        let (_, past) = store.read_chunk(&sha, 99, 100).expect("read").expect("held");
        assert!(past.is_empty());
        assert!(store.read_chunk(&"0".repeat(64), 0, 5).expect("read").is_none());
        assert!(store.path("../../etc/passwd").is_none(), "only sha names are looked up");
        let error = store.put(&mut &b"too long"[..], 3).expect_err("over the limit");
        assert!(error.to_string().contains("limit"), "{error}");
    }

    #[test]
    fn chunks_assemble_into_a_checked_file_and_wrong_content_is_dropped() {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(data_dir.path());
        let content = b"0123456789";
        let sha = sha256_of(&mut &content[..]).expect("hashed");
        assert_eq!(
            store.put_chunk(&sha, 10, 0, &content[..4], Keep::Holder).expect("taken"),
            Some(4)
        );
        assert_eq!(
            store.put_chunk(&sha, 10, 8, &content[8..], Keep::Holder).expect("out of order"),
            Some(4)
        );
        assert_eq!(store.put_chunk(&sha, 10, 4, &content[4..], Keep::Holder).expect("taken"), None);
        assert!(store.path(&sha).is_some());
        assert_eq!(store.put_chunk(&sha, 10, 0, b"x", Keep::Holder).expect("held already"), None);

        let other = "ab".repeat(32);
        let error = store.put_chunk(&other, 3, 0, b"abc", Keep::Holder).expect_err("wrong content");
        assert!(error.to_string().contains("not"), "{error}");
        assert!(store.path(&other).is_none());
        assert!(store.put_chunk(&other, 1, 0, b"too long", Keep::Holder).is_err());
        assert!(store.put_chunk("nope", 1, 0, b"x", Keep::Holder).is_err());
    }

    #[test]
    fn prune_deletes_only_files_older_than_the_retention() {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(data_dir.path());
        let (sha, _) = store.put(&mut &b"kept"[..], 100).expect("stored");
        assert_eq!(store.prune(Duration::from_secs(3600), SystemTime::now()), 0);
        let later = SystemTime::now() + Duration::from_secs(7200);
        assert_eq!(store.prune(Duration::from_secs(3600), later), 1);
        assert!(store.path(&sha).is_none());
    }
}
