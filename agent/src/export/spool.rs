//! A bounded, crash-safe disk spool of export batches.
//!
//! Every batch goes through the spool (write-ahead): the producer pushes it,
//! the sender peeks the oldest, sends it and acks it. A collector outage or
//! an agent restart therefore loses nothing until the spool's byte bound is
//! reached, and then only the oldest batches go, each one counted and logged.
//!
//! Each batch is one segment file `<dir>/<seq, 20 digits>.seg`:
//!
//! | bytes | content                                |
//! |-------|----------------------------------------|
//! | 4     | magic `TSP1`                           |
//! | 4     | payload length, u32 little endian      |
//! | 4     | CRC32 of the payload, u32 little endian |
//! | 8     | sequence number, u64 little endian     |
//! | n     | payload                                |
//!
//! A segment is committed by writing `<seq>.tmp`, syncing it, renaming it to
//! `.seg` and syncing the directory, so after a crash a segment is either
//! whole or absent; leftover `.tmp` files are uncommitted and are removed on
//! open. Segments that fail validation (disk or filesystem damage) are moved
//! to `<dir>/corrupt/` for inspection, never deleted.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Magic bytes opening every segment file.
const MAGIC: &[u8; 4] = b"TSP1";
/// Size of a segment header: magic, length, CRC and sequence number.
pub const HEADER_LEN: u64 = 20;
/// Extension of committed segments.
const SEG_EXT: &str = "seg";
/// Extension of segments being written.
const TMP_EXT: &str = "tmp";
/// Subdirectory receiving segments that failed validation.
const CORRUPT_DIR: &str = "corrupt";

/// Errors of the spool. Each names the path involved so an operator can act
/// on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool directory does not exist and cannot be created (a path
    /// below a regular file, no permission, read-only filesystem).
    #[error("cannot create spool directory {path}: {source}")]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The spool directory exists but cannot be listed or written.
    #[error("spool directory {path} is not usable: {source}")]
    Unusable {
        /// The spool directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading, writing, syncing or removing a file failed.
    #[error("spool I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A single batch is larger than the whole spool may be; evicting every
    /// other batch would still not make room, so it is refused outright.
    #[error(
        "batch of {size} bytes (with {HEADER_LEN}-byte header) exceeds the spool bound of {max_bytes} bytes"
    )]
    TooLarge {
        /// Size the segment would have on disk.
        size: u64,
        /// The spool's bound.
        max_bytes: u64,
    },
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// One batch read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    /// Sequence number; pass it to [`Spool::ack`] once the batch is delivered
    /// or dropped.
    pub seq: u64,
    /// The batch exactly as pushed.
    pub payload: Vec<u8>,
}

/// Counters describing the spool, for the agent's self-telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Batches waiting to be sent.
    pub batches: u64,
    /// Bytes on disk of those batches, headers included.
    pub bytes: u64,
    /// The bound on those bytes; the oldest batches go beyond it.
    pub limit_bytes: u64,
    /// Batches evicted to respect the bound since open.
    pub evicted_total: u64,
    /// Segments set aside into `corrupt/` since open.
    pub corrupt_total: u64,
}

/// The disk spool. Not internally synchronised: share it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Sequence number → segment size on disk (header included), so stats
    /// and `oldest` never rescan the directory.
    index: BTreeMap<u64, u64>,
    bytes: u64,
    next_seq: u64,
    evicted_total: u64,
    corrupt_total: u64,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, bounded to `max_bytes`
    /// on disk. Removes uncommitted `.tmp` files and validates every segment,
    /// setting corrupt or truncated ones aside into `corrupt/`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(|source| SpoolError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        if !dir.is_dir() {
            return Err(SpoolError::CreateDir {
                path: dir.to_owned(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let unusable = |source| SpoolError::Unusable {
            path: dir.to_owned(),
            source,
        };
        // Fail now, with a clear message, rather than at the first push.
        let probe = dir.join(format!("open-probe.{TMP_EXT}"));
        File::create(&probe).map_err(unusable)?;
        fs::remove_file(&probe).map_err(unusable)?;

        let mut spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            index: BTreeMap::new(),
            bytes: 0,
            next_seq: 1,
            evicted_total: 0,
            corrupt_total: 0,
        };
        let mut max_seen = 0u64;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir).map_err(unusable)? {
            let entry = entry.map_err(unusable)?;
            let path = entry.path();
            if path.is_dir() {
                continue;
            }
            match path.extension().and_then(|e| e.to_str()) {
                Some(TMP_EXT) => {
                    tracing::info!(path = %path.display(), "removing uncommitted spool write");
                    fs::remove_file(&path).map_err(|e| SpoolError::io(&path, e))?;
                }
                Some(SEG_EXT) => {
                    let seq = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .filter(|s| s.len() == 20)
                        .and_then(|s| s.parse::<u64>().ok());
                    match seq {
                        Some(seq) => {
                            max_seen = max_seen.max(seq);
                            segments.push((seq, path));
                        }
                        None => spool.set_aside(&path, "segment name is not a sequence number"),
                    }
                }
                _ => {
                    tracing::debug!(path = %path.display(), "ignoring unknown file in spool directory");
                }
            }
        }
        for (seq, path) in segments {
            let bytes = fs::read(&path).map_err(|e| SpoolError::io(&path, e))?;
            match decode(&bytes, seq) {
                Ok(_) => {
                    spool.index.insert(seq, bytes.len() as u64);
                    spool.bytes += bytes.len() as u64;
                }
                Err(reason) => spool.set_aside(&path, reason),
            }
        }
        // Corrupt names count too, so a fresh segment never reuses one.
        spool.next_seq = max_seen.saturating_add(1);
        sync_dir(dir)?;
        if !spool.index.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                batches = spool.index.len(),
                bytes = spool.bytes,
                "spool holds batches from a previous run"
            );
        }
        Ok(spool)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Durably appends a batch and returns its sequence number. Evicts the
    /// oldest batches (counted and logged) until the new one fits the bound.
    pub fn push(&mut self, payload: &[u8]) -> Result<u64, SpoolError> {
        let size = HEADER_LEN + payload.len() as u64;
        let length = u32::try_from(payload.len()).map_err(|_| SpoolError::TooLarge {
            size,
            max_bytes: self.max_bytes,
        })?;
        if size > self.max_bytes {
            return Err(SpoolError::TooLarge {
                size,
                max_bytes: self.max_bytes,
            });
        }
        while self.bytes + size > self.max_bytes {
            let Some((seq, seg_size)) = self.index.pop_first() else {
                break;
            };
            let path = self.seg_path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.index.insert(seq, seg_size);
                    return Err(SpoolError::io(&path, e));
                }
            }
            self.bytes -= seg_size;
            self.evicted_total += 1;
            tracing::warn!(
                seq,
                bytes = seg_size,
                max_bytes = self.max_bytes,
                evicted_total = self.evicted_total,
                "spool full: evicted oldest batch (it will never be sent)"
            );
        }

        let seq = self.next_seq;
        let tmp = self.dir.join(format!("{seq:020}.{TMP_EXT}"));
        let seg = self.seg_path(seq);
        let mut data = Vec::with_capacity(size as usize);
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&length.to_le_bytes());
        data.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        data.extend_from_slice(&seq.to_le_bytes());
        data.extend_from_slice(payload);
        if let Err(e) = write_synced(&tmp, &data) {
            // Best effort: a leftover .tmp is removed on the next open anyway.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&tmp, &seg) {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::io(&seg, e));
        }
        self.next_seq += 1;
        self.index.insert(seq, size);
        self.bytes += size;
        // The segment is in place; if the directory sync fails it may not
        // survive a power loss, which the error reports. It stays indexed
        // and will be sent.
        sync_dir(&self.dir)?;
        Ok(seq)
    }

    /// Reads the oldest batch, or `None` when the spool is empty. A segment
    /// that fails validation now is set aside into `corrupt/` (counted) and
    /// the next one is tried, so one bad file cannot stall delivery.
    pub fn oldest(&mut self) -> Result<Option<SpoolEntry>, SpoolError> {
        while let Some((&seq, &size)) = self.index.first_key_value() {
            let path = self.seg_path(seq);
            match fs::read(&path) {
                Ok(bytes) => match decode(&bytes, seq) {
                    Ok(payload) => {
                        return Ok(Some(SpoolEntry {
                            seq,
                            payload: payload.to_vec(),
                        }));
                    }
                    Err(reason) => {
                        self.forget(seq, size);
                        self.set_aside(&path, reason);
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    tracing::warn!(seq, path = %path.display(), "spool segment vanished; skipping it");
                    self.forget(seq, size);
                }
                Err(e) => return Err(SpoolError::io(&path, e)),
            }
        }
        Ok(None)
    }

    /// Removes a delivered (or deliberately dropped) batch. Acking an unknown
    /// sequence number is a no-op. The directory is not synced: after a
    /// crash an acked batch may be sent again (at-least-once delivery).
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        let Some(&size) = self.index.get(&seq) else {
            return Ok(());
        };
        let path = self.seg_path(seq);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io(&path, e)),
        }
        self.forget(seq, size);
        Ok(())
    }

    /// Current counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            batches: self.index.len() as u64,
            bytes: self.bytes,
            limit_bytes: self.max_bytes,
            evicted_total: self.evicted_total,
            corrupt_total: self.corrupt_total,
        }
    }

    fn seg_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.{SEG_EXT}"))
    }

    fn forget(&mut self, seq: u64, size: u64) {
        if self.index.remove(&seq).is_some() {
            self.bytes -= size;
        }
    }

    /// Moves a bad segment into `corrupt/`, never overwriting an earlier
    /// one. Counted even if the move fails (the file then stays where it is
    /// and is set aside again on the next open).
    fn set_aside(&mut self, path: &Path, reason: &str) {
        self.corrupt_total += 1;
        let corrupt_dir = self.dir.join(CORRUPT_DIR);
        let result = fs::create_dir_all(&corrupt_dir).and_then(|()| {
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let mut target = corrupt_dir.join(&name);
            let mut n = 1u32;
            while target.exists() {
                let mut numbered = name.clone();
                numbered.push(format!(".{n}"));
                target = corrupt_dir.join(numbered);
                n += 1;
            }
            fs::rename(path, &target)?;
            Ok(target)
        });
        match result {
            Ok(target) => tracing::warn!(
                path = %path.display(),
                moved_to = %target.display(),
                reason,
                corrupt_total = self.corrupt_total,
                "corrupt spool segment set aside"
            ),
            Err(error) => tracing::warn!(
                path = %path.display(),
                reason,
                %error,
                corrupt_total = self.corrupt_total,
                "corrupt spool segment skipped but could not be moved aside"
            ),
        }
    }
}

/// Validates a segment read from disk and returns its payload, or why it is
/// unusable.
fn decode(bytes: &[u8], expected_seq: u64) -> Result<&[u8], &'static str> {
    let header_len = HEADER_LEN as usize;
    if bytes.len() < header_len {
        return Err("truncated header");
    }
    let (header, payload) = bytes.split_at(header_len);
    if &header[0..4] != MAGIC {
        return Err("bad magic");
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&header[4..8]);
    let length = u32::from_le_bytes(word);
    word.copy_from_slice(&header[8..12]);
    let crc = u32::from_le_bytes(word);
    let mut long = [0u8; 8];
    long.copy_from_slice(&header[12..20]);
    let seq = u64::from_le_bytes(long);
    if payload.len() != length as usize {
        return Err(if payload.len() < length as usize {
            "truncated payload"
        } else {
            "trailing bytes after payload"
        });
    }
    if crc32fast::hash(payload) != crc {
        return Err("CRC mismatch");
    }
    if seq != expected_seq {
        return Err("sequence number does not match file name");
    }
    Ok(payload)
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), SpoolError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| SpoolError::io(path, e))?;
    file.write_all(data).map_err(|e| SpoolError::io(path, e))?;
    file.sync_all().map_err(|e| SpoolError::io(path, e))
}

/// Makes renames and creations in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(spool: &mut Spool) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(entry) = spool.oldest().expect("oldest") {
            spool.ack(entry.seq).expect("ack");
            out.push((entry.seq, entry.payload));
        }
        out
    }

    fn corrupt_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join(CORRUPT_DIR))
            .map(|rd| {
                rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn push_oldest_ack_in_order() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(tmp.path(), 1 << 20).expect("open");
        assert_eq!(spool.oldest().expect("oldest"), None);
        assert_eq!(spool.push(b"one").expect("push"), 1);
        assert_eq!(spool.push(b"two").expect("push"), 2);
        assert_eq!(spool.push(b"").expect("push"), 3);
        assert_eq!(
            spool.stats(),
            SpoolStats {
                batches: 3,
                bytes: 3 * HEADER_LEN + 6,
                limit_bytes: 1 << 20,
                evicted_total: 0,
                corrupt_total: 0
            }
        );
        // Peeking does not consume.
        let first = spool.oldest().expect("oldest").expect("some");
        assert_eq!(first.seq, 1);
        assert_eq!(spool.oldest().expect("oldest"), Some(first));
        assert!(tmp.path().join(format!("{:020}.seg", 1)).is_file());
        assert_eq!(
            payloads(&mut spool),
            vec![(1, b"one".to_vec()), (2, b"two".to_vec()), (3, Vec::new())]
        );
        assert_eq!(spool.stats().batches, 0);
        assert_eq!(spool.stats().bytes, 0);
        // Acking twice or an unknown seq is harmless.
        spool.ack(1).expect("ack again");
        spool.ack(99).expect("ack unknown");
    }

    #[test]
    fn reopen_keeps_batches_and_sequence() {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let mut spool = Spool::open(tmp.path(), 1 << 20).expect("open");
            for i in 0..5u8 {
                spool.push(&[i; 10]).expect("push");
            }
            spool.ack(1).expect("ack");
        }
        let mut spool = Spool::open(tmp.path(), 1 << 20).expect("reopen");
        assert_eq!(spool.stats().batches, 4);
        assert_eq!(spool.stats().bytes, 4 * (HEADER_LEN + 10));
        assert_eq!(spool.push(b"six").expect("push"), 6);
        let got = payloads(&mut spool);
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
        assert_eq!(got[0].1, vec![1u8; 10]);
        assert_eq!(got[4].1, b"six".to_vec());
        drop(spool);
        // Empty spool reopens with the sequence continuing only from files
        // present; an empty directory starts again at 1.
        let mut spool = Spool::open(tmp.path(), 1 << 20).expect("reopen empty");
        assert_eq!(spool.push(b"x").expect("push"), 1);
    }

    #[test]
    fn corrupt_and_truncated_segments_are_set_aside_on_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        {
            let mut spool = Spool::open(dir, 1 << 20).expect("open");
            for payload in [b"good-1", b"flip-2", b"trunc3", b"good-4"] {
                spool.push(payload).expect("push");
            }
        }
        let flip = dir.join(format!("{:020}.seg", 2));
        let mut bytes = fs::read(&flip).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&flip, &bytes).expect("write");
        let trunc = dir.join(format!("{:020}.seg", 3));
        let bytes = fs::read(&trunc).expect("read");
        fs::write(&trunc, &bytes[..bytes.len() - 2]).expect("write");
        // An uncommitted write left by a crash.
        fs::write(dir.join(format!("{:020}.tmp", 5)), b"half a segm").expect("write tmp");

        let mut spool = Spool::open(dir, 1 << 20).expect("reopen");
        assert_eq!(spool.stats().corrupt_total, 2);
        assert_eq!(spool.stats().batches, 2);
        assert!(!dir.join(format!("{:020}.tmp", 5)).exists(), ".tmp removed");
        assert_eq!(
            corrupt_files(dir),
            vec![format!("{:020}.seg", 2), format!("{:020}.seg", 3)]
        );
        assert_eq!(
            payloads(&mut spool),
            vec![(1, b"good-1".to_vec()), (4, b"good-4".to_vec())]
        );
        // Next seq continues past every name seen.
        assert_eq!(spool.push(b"next").expect("push"), 5);
    }

    #[test]
    fn segment_corrupted_after_open_is_set_aside_by_oldest() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut spool = Spool::open(dir, 1 << 20).expect("open");
        spool.push(b"first").expect("push");
        spool.push(b"second").expect("push");
        let first = dir.join(format!("{:020}.seg", 1));
        let mut bytes = fs::read(&first).expect("read");
        bytes[HEADER_LEN as usize] ^= 0xff;
        fs::write(&first, &bytes).expect("write");

        let entry = spool.oldest().expect("oldest").expect("some");
        assert_eq!(entry.seq, 2);
        assert_eq!(entry.payload, b"second");
        assert_eq!(spool.stats().corrupt_total, 1);
        assert_eq!(spool.stats().batches, 1);
        assert_eq!(spool.stats().bytes, HEADER_LEN + 6);
        assert_eq!(corrupt_files(dir), vec![format!("{:020}.seg", 1)]);
        // The set-aside file is intact on disk, damage and all.
        assert_eq!(
            fs::read(dir.join(CORRUPT_DIR).join(format!("{:020}.seg", 1))).expect("read"),
            bytes
        );
    }

    #[test]
    fn set_aside_never_overwrites() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        fs::create_dir_all(dir.join(CORRUPT_DIR)).expect("mkdir");
        fs::write(dir.join(CORRUPT_DIR).join(format!("{:020}.seg", 1)), b"old").expect("w");
        fs::write(dir.join(format!("{:020}.seg", 1)), b"garbage").expect("w");
        fs::write(dir.join("junk.seg"), b"garbage").expect("w");
        let spool = Spool::open(dir, 1 << 20).expect("open");
        assert_eq!(spool.stats().corrupt_total, 2);
        assert_eq!(
            corrupt_files(dir),
            vec![
                format!("{:020}.seg", 1),
                format!("{:020}.seg.1", 1),
                "junk.seg".to_owned()
            ]
        );
    }

    #[test]
    fn bound_evicts_oldest_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let seg = HEADER_LEN + 100;
        let mut spool = Spool::open(tmp.path(), 3 * seg).expect("open");
        for i in 1..=3u8 {
            spool.push(&[i; 100]).expect("push");
        }
        assert_eq!(spool.stats().evicted_total, 0);
        assert_eq!(spool.stats().bytes, 3 * seg);
        spool.push(&[4; 100]).expect("push 4");
        assert_eq!(spool.stats().evicted_total, 1);
        assert!(!tmp.path().join(format!("{:020}.seg", 1)).exists());
        // A bigger batch needs two evictions.
        spool.push(&[5; 150]).expect("push 5");
        assert_eq!(spool.stats().evicted_total, 3);
        assert_eq!(spool.stats().batches, 2);
        assert_eq!(spool.stats().bytes, seg + HEADER_LEN + 150);
        let seqs: Vec<u64> = payloads(&mut spool).iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![4, 5]);
    }

    #[test]
    fn batch_larger_than_bound_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(tmp.path(), 100).expect("open");
        spool.push(&[0; 10]).expect("small push");
        let err = spool.push(&[0; 81]).expect_err("too large");
        assert!(
            matches!(
                err,
                SpoolError::TooLarge {
                    size: 101,
                    max_bytes: 100
                }
            ),
            "{err}"
        );
        // Nothing was evicted for the refused batch.
        assert_eq!(spool.stats().batches, 1);
        assert_eq!(spool.stats().evicted_total, 0);
        spool
            .push(&[0; 80])
            .expect("exactly the bound fits after eviction");
        assert_eq!(spool.stats().evicted_total, 1);
    }

    #[test]
    fn open_below_a_regular_file_fails_clearly() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("plain-file");
        fs::write(&file, b"x").expect("write");
        let dir = file.join("spool");
        let err = Spool::open(&dir, 1 << 20).expect_err("must fail");
        let message = err.to_string();
        assert!(matches!(err, SpoolError::CreateDir { .. }), "{message}");
        assert!(message.contains(&dir.display().to_string()), "{message}");
        // The regular file itself is not a directory either.
        let err = Spool::open(&file, 1 << 20).expect_err("must fail");
        assert!(err.to_string().contains("plain-file"), "{err}");
    }
}
