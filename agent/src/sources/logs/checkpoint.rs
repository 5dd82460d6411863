//! Where each followed file was delivered up to: committed only once the
//! collector acknowledged the batch holding the line, written with fsync
//! and an atomic rename, so a crash re-sends at most what was in flight
//! and skips nothing.
//!
//! A checkpoint file that cannot be read (truncated, corrupt) is set aside
//! and reading starts from each file's beginning: duplicates rather than
//! loss.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::tail::FileId;

/// The checkpoint file's format version.
const VERSION: u32 = 1;

/// Why checkpoints could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a checkpoint file of this version.
    #[error(
        "checkpoint file {path} is unreadable ({reason}); set aside, files are read from their start"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        reason: String,
    },
}

/// One file's delivered offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the file was when last committed (it may since have been
    /// renamed by rotation: entries are found by identity).
    pub path: String,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// The file's head, hex.
    pub fingerprint: String,
    /// Delivered up to here.
    pub offset: u64,
    /// When (unix seconds) a scan first found the file gone; kept a while
    /// so its gzipped copy can be matched by head and finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_since: Option<u64>,
    /// Read to its end and delivered (a gzipped rotation: never again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u32,
    files: BTreeMap<String, Entry>,
}

/// The delivered offsets of every followed file, by identity
/// (`<dev>:<ino>`), so a file kubelet renamed keeps its offset.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    files: BTreeMap<String, Entry>,
}

fn key(dev: u64, ino: u64) -> String {
    format!("{dev}:{ino}")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Checkpoints {
    /// Loads `path`; a missing file is an empty set. A corrupt one is
    /// renamed to `<path>.corrupt` and reported, and the set starts empty.
    pub fn load(path: &Path) -> (Self, Option<CheckpointError>) {
        let empty = |error| {
            (
                Self {
                    path: path.to_path_buf(),
                    files: BTreeMap::new(),
                },
                error,
            )
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty(None),
            Err(source) => {
                return empty(Some(CheckpointError::Io {
                    path: path.to_path_buf(),
                    source,
                }));
            }
        };
        match serde_json::from_slice::<Stored>(&text) {
            Ok(stored) if stored.version == VERSION => (
                Self {
                    path: path.to_path_buf(),
                    files: stored.files,
                },
                None,
            ),
            outcome => {
                let reason = match outcome {
                    Ok(stored) => format!("version {}", stored.version),
                    Err(e) => e.to_string(),
                };
                let _ = std::fs::rename(path, path.with_extension("corrupt"));
                empty(Some(CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    reason,
                }))
            }
        }
    }

    /// Where to resume `file`, wherever it now is: the committed offset of
    /// the same file (device, inode and head), else 0 (an inode reused by
    /// another file has another head).
    pub fn resume(&self, file: &FileId) -> u64 {
        let Some(entry) = self.files.get(&key(file.dev, file.ino)) else {
            return 0;
        };
        let stored = FileId {
            dev: entry.dev,
            ino: entry.ino,
            fingerprint: from_hex(&entry.fingerprint).unwrap_or_default(),
        };
        if stored.same_file(file) {
            entry.offset
        } else {
            0
        }
    }

    /// Marks the entries of files `exists` says are gone (an inode reused
    /// by another file has another head: gone too), and drops those
    /// gone longer than `keep_seconds`: the paths of the ones never read
    /// to their end come back (lines possibly lost: counted by file).
    pub fn sweep(
        &mut self,
        exists: impl Fn(&FileId) -> bool,
        now: u64,
        keep_seconds: u64,
    ) -> Vec<String> {
        let mut unread = Vec::new();
        self.files.retain(|_, entry| {
            let id = FileId {
                dev: entry.dev,
                ino: entry.ino,
                fingerprint: from_hex(&entry.fingerprint).unwrap_or_default(),
            };
            if exists(&id) {
                entry.gone_since = None;
                return true;
            }
            let since = *entry.gone_since.get_or_insert(now);
            if now.saturating_sub(since) <= keep_seconds {
                return true;
            }
            if !entry.done {
                unread.push(entry.path.clone());
            }
            false
        });
        unread
    }

    /// The entry of a gone, unfinished file whose head `head` starts with
    /// (a gzipped rotation of it): its key and delivered offset.
    pub fn gone_with_head(&self, head: &[u8]) -> Option<(String, u64)> {
        self.files.iter().find_map(|(key, entry)| {
            let fingerprint = from_hex(&entry.fingerprint)?;
            let n = fingerprint.len().min(head.len());
            (entry.gone_since.is_some() && !entry.done && n > 0 && fingerprint[..n] == head[..n])
                .then(|| (key.clone(), entry.offset))
        })
    }

    /// Whether `file` was read to its end and delivered.
    pub fn is_done(&self, file: &FileId) -> bool {
        self.files
            .get(&key(file.dev, file.ino))
            .is_some_and(|entry| entry.done)
    }

    /// Records `file` as read to its end and delivered.
    pub fn commit_done(&mut self, path: &Path, file: &FileId, offset: u64) {
        let known = self
            .files
            .get(&key(file.dev, file.ino))
            .map_or(0, |entry| entry.offset);
        self.commit(path, file, offset.max(known));
        if let Some(entry) = self.files.get_mut(&key(file.dev, file.ino)) {
            entry.done = true;
        }
    }

    /// Forgets the entry under `key` (its gzipped copy took over).
    pub fn forget_key(&mut self, key: &str) {
        self.files.remove(key);
    }

    /// Records that `file` at `path` is delivered up to `offset` (call
    /// after the collector acknowledged it; [`Self::save`] makes it
    /// durable).
    pub fn commit(&mut self, path: &Path, file: &FileId, offset: u64) {
        self.files.insert(
            key(file.dev, file.ino),
            Entry {
                path: path.to_string_lossy().into_owned(),
                dev: file.dev,
                ino: file.ino,
                fingerprint: to_hex(&file.fingerprint),
                offset,
                gone_since: None,
                done: false,
            },
        );
    }

    /// Writes the set: a temporary file, fsync, rename over the old one,
    /// fsync of the directory.
    pub fn save(&self) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: self.path.clone(),
            source,
        };
        let stored = Stored {
            version: VERSION,
            files: self.files.clone(),
        };
        let body = serde_json::to_vec(&stored).map_err(|e| io(e.into()))?;
        let temporary = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&body).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::logs::tail::Tailer;

    #[test]
    fn committed_offsets_survive_a_restart_and_only_for_the_same_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        std::fs::write(&log, "a\nb\nc\n").expect("log");
        let store = dir.path().join("checkpoints.json");
        let (mut checkpoints, error) = Checkpoints::load(&store);
        assert!(error.is_none());
        let tail = Tailer::open(&log, 0, 1024).expect("open");
        checkpoints.commit(&log, tail.id(), 4);
        checkpoints.save().expect("save");
        let (reloaded, error) = Checkpoints::load(&store);
        assert!(error.is_none());
        assert_eq!(reloaded.resume(tail.id()), 4);
        // Another file now at the path (rotated): start at its beginning.
        std::fs::rename(&log, dir.path().join("0.log.1")).expect("rotate");
        std::fs::write(&log, "new\n").expect("new");
        let fresh = Tailer::open(&log, 0, 1024).expect("open");
        assert_eq!(reloaded.resume(fresh.id()), 0);
        // The rotated file is found by identity under its new name.
        let rotated = Tailer::open(&dir.path().join("0.log.1"), 0, 1024).expect("open");
        assert_eq!(reloaded.resume(rotated.id()), 4);
        // Gone: kept a while for its gzipped copy, then dropped and
        // reported as not read to its end.
        let mut pruned = reloaded;
        let gone = |id: &FileId| id.ino != rotated.id().ino;
        assert!(pruned.sweep(gone, 1_000, 60).is_empty());
        assert_eq!(
            pruned.gone_with_head(b"a\nb\nc\nmore"),
            Some((key(rotated.id().dev, rotated.id().ino), 4))
        );
        assert_eq!(pruned.gone_with_head(b"other"), None);
        assert!(pruned.sweep(gone, 1_060, 60).is_empty(), "not yet");
        assert_eq!(pruned.sweep(gone, 1_061, 60), [log.to_string_lossy()]);
        assert_eq!(pruned.resume(rotated.id()), 0);
        // A file read to its end is never reported.
        pruned.commit_done(&log, fresh.id(), 4);
        assert!(pruned.is_done(fresh.id()));
        assert!(pruned.sweep(|_| false, 2_000, 60).is_empty());
        assert!(pruned.sweep(|_| false, 2_061, 60).is_empty());
        assert!(!pruned.is_done(fresh.id()), "dropped after the grace");
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_reading_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("checkpoints.json");
        std::fs::write(&store, b"{\"version\":1,\"files\":{\"/x\":{\"dev\"").expect("write");
        let (checkpoints, error) = Checkpoints::load(&store);
        assert!(
            matches!(error, Some(CheckpointError::Corrupt { .. })),
            "{error:?}"
        );
        assert!(dir.path().join("checkpoints.corrupt").exists());
        let log = dir.path().join("0.log");
        std::fs::write(&log, "a\n").expect("log");
        let tail = Tailer::open(&log, 0, 1024).expect("open");
        assert_eq!(checkpoints.resume(tail.id()), 0);
    }
}
