//! The write-ahead log: every accepted request is appended and fsynced
//! before the collector acknowledges it, and replayed on start.
//!
//! Segments `wal-<20-digit seq>.log` hold records
//! `[magic u32][kind u8][len u32][crc32 u32][payload]` (little endian);
//! the payload is the OTLP request protobuf exactly as accepted, so replay
//! runs the same code as ingest. A record that fails its length or checksum
//! at the end of the newest segment is a torn write: the segment is cut
//! there and the loss counted, never fatal. Segments older than the
//! retention window are deleted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: u32 = 0x5441_4c57; // "TALW"
const HEADER: usize = 13;
/// Segments roll over at this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// No single record may exceed this (the ingest limit is far below).
const MAX_RECORD: usize = 256 << 20;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An `ExportMetricsServiceRequest`.
    Metrics = 1,
    /// An `ExportLogsServiceRequest`.
    Logs = 2,
}

/// WAL failures.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("write-ahead log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What recovery found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Records replayed.
    pub records: u64,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
}

/// Where a record sits in the log: its segment and byte offset. Positions
/// only grow (a reopened log starts a new segment), so log segments can
/// say which requests they already hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WalPosition {
    /// Segment sequence number.
    pub seq: u64,
    /// Byte offset of the record in the segment.
    pub offset: u64,
}

/// The open log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    seq: u64,
    size: u64,
    retention: Duration,
}

fn segment_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    numbered_files(dir, "wal-", ".log").map_err(io_error(dir))
}

/// The files of `dir` named `<prefix><number><suffix>`, by number.
pub(crate) fn numbered_files(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((seq, entry.path()));
    }
    found.sort();
    Ok(found)
}

impl Wal {
    /// Opens (creating) the log in `dir`, replaying every intact record
    /// of segments `from_seq` and newer through `apply` in order. Older
    /// segments are covered by a snapshot and deleted.
    pub fn open(
        dir: &Path,
        retention: Duration,
        from_seq: u64,
        mut apply: impl FnMut(RecordKind, &[u8]),
    ) -> Result<(Wal, Recovery), WalError> {
        Self::open_positioned(dir, retention, from_seq, |kind, payload, _| {
            apply(kind, payload)
        })
    }

    /// [`Wal::open`], telling `apply` where each record sits.
    pub fn open_positioned(
        dir: &Path,
        retention: Duration,
        from_seq: u64,
        mut apply: impl FnMut(RecordKind, &[u8], WalPosition),
    ) -> Result<(Wal, Recovery), WalError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut recovery = Recovery::default();
        let mut found = segments(dir)?;
        for (_, path) in found.iter().filter(|(seq, _)| *seq < from_seq) {
            std::fs::remove_file(path).map_err(io_error(path))?;
        }
        found.retain(|(seq, _)| *seq >= from_seq);
        let newest = found.last().map(|(seq, _)| *seq);
        for (seq, path) in &found {
            let mut content = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut content))
                .map_err(io_error(path))?;
            let mut offset = 0usize;
            while offset < content.len() {
                match parse_record(&content[offset..]) {
                    Some((kind, payload, used)) => {
                        let position = WalPosition {
                            seq: *seq,
                            offset: offset as u64,
                        };
                        apply(kind, payload, position);
                        recovery.records += 1;
                        offset += used;
                    }
                    None => break,
                }
            }
            if offset < content.len() {
                let cut = (content.len() - offset) as u64;
                recovery.truncated_bytes += cut;
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    bytes = cut,
                    "write-ahead log has a torn or corrupt tail; cutting it (counted in tally_collector_wal_truncated_bytes_total)"
                );
                // Only the newest segment can have been torn by a crash; an
                // older one is cut too rather than refusing to start.
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_error(path))?;
                file.set_len(offset as u64).map_err(io_error(path))?;
                file.sync_all().map_err(io_error(path))?;
            }
        }
        let seq = newest.unwrap_or(0).max(from_seq.saturating_sub(1)) + 1;
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        sync_dir(dir)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            file,
            path,
            seq,
            size: 0,
            retention,
        };
        wal.expire()?;
        Ok((wal, recovery))
    }

    /// Appends a record and fsyncs it. Returns only once it is durable,
    /// with where it was written.
    pub fn append(&mut self, kind: RecordKind, payload: &[u8]) -> Result<WalPosition, WalError> {
        if self.size >= SEGMENT_BYTES {
            self.roll()?;
        }
        let position = WalPosition {
            seq: self.seq,
            offset: self.size,
        };
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.push(kind as u8);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write_all(&record).map_err(io_error(&self.path))?;
        self.file.sync_data().map_err(io_error(&self.path))?;
        self.size += record.len() as u64;
        Ok(position)
    }

    /// Moves on to a segment numbered after `seq` if the current one is
    /// not already: positions written from now on are greater than any in
    /// segment `seq` (log segments that outlived a lost log directory
    /// must not cover new records).
    pub fn roll_past(&mut self, seq: u64) -> Result<(), WalError> {
        if self.seq <= seq {
            self.seq = seq;
            self.roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<(), WalError> {
        self.seq += 1;
        self.path = self.dir.join(segment_name(self.seq));
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_error(&self.path))?;
        self.size = 0;
        sync_dir(&self.dir)?;
        self.expire()
    }

    /// Starts a new segment for a snapshot: everything before the returned
    /// sequence number is in the snapshot about to be written.
    pub fn roll_for_snapshot(&mut self) -> Result<u64, WalError> {
        self.roll()?;
        Ok(self.seq)
    }

    /// Deletes the segments before `seq` (a snapshot covers them).
    pub fn remove_before(&self, seq: u64) -> Result<(), WalError> {
        for (old, path) in segments(&self.dir)? {
            if old < seq {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(())
    }

    /// Deletes closed segments last written before the retention window.
    fn expire(&self) -> Result<(), WalError> {
        let cutoff = SystemTime::now().checked_sub(self.retention);
        for (seq, path) in segments(&self.dir)? {
            if seq == self.seq {
                continue;
            }
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if let (Some(modified), Some(cutoff)) = (modified, cutoff)
                && modified < cutoff
            {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(())
    }

    /// Bytes in the current segment.
    pub fn segment_bytes(&self) -> u64 {
        self.size
    }
}

fn parse_record(bytes: &[u8]) -> Option<(RecordKind, &[u8], usize)> {
    if bytes.len() < HEADER {
        return None;
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if word(0) != MAGIC {
        return None;
    }
    let kind = match bytes[4] {
        1 => RecordKind::Metrics,
        2 => RecordKind::Logs,
        _ => return None,
    };
    let len = word(5) as usize;
    if len > MAX_RECORD || bytes.len() < HEADER + len {
        return None;
    }
    let payload = &bytes[HEADER..HEADER + len];
    (crc32fast::hash(payload) == word(9)).then_some((kind, payload, HEADER + len))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn records_replay_in_order_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut wal, recovery) = Wal::open(dir.path(), DAY, 0, |_, _| {}).expect("open");
            assert_eq!(recovery, Recovery::default());
            wal.append(RecordKind::Metrics, b"one").expect("append");
            wal.append(RecordKind::Logs, b"two").expect("append");
        }
        // A crash mid-write leaves half a record.
        let (_, path) = segments(dir.path()).expect("list").remove(0);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&MAGIC.to_le_bytes()).expect("write");
        file.write_all(&[1, 200, 0, 0, 0]).expect("write");
        drop(file);

        let mut seen = Vec::new();
        let (mut wal, recovery) = Wal::open(dir.path(), DAY, 0, |kind, payload| {
            seen.push((kind, payload.to_vec()))
        })
        .expect("open");
        assert_eq!(
            seen,
            vec![
                (RecordKind::Metrics, b"one".to_vec()),
                (RecordKind::Logs, b"two".to_vec())
            ]
        );
        assert_eq!(
            recovery,
            Recovery {
                records: 2,
                truncated_bytes: 9
            }
        );
        wal.append(RecordKind::Metrics, b"three").expect("append");
        drop(wal);

        let mut seen = Vec::new();
        let (_, recovery) =
            Wal::open(dir.path(), DAY, 0, |_, payload| seen.push(payload.to_vec())).expect("open");
        assert_eq!(
            seen,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(recovery.truncated_bytes, 0);
    }

    #[test]
    fn replay_gives_the_positions_append_returned_and_they_only_grow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = {
            let (mut wal, _) = Wal::open(dir.path(), DAY, 0, |_, _| {}).expect("open");
            let mut written = vec![
                wal.append(RecordKind::Logs, b"one").expect("append"),
                wal.append(RecordKind::Metrics, b"two").expect("append"),
            ];
            wal.roll_past(40).expect("roll");
            written.push(wal.append(RecordKind::Logs, b"three").expect("append"));
            written
        };
        assert!(written.windows(2).all(|w| w[0] < w[1]), "{written:?}");
        assert_eq!(written[2].seq, 41);
        let mut seen = Vec::new();
        let (mut wal, _) =
            Wal::open_positioned(dir.path(), DAY, 0, |_, _, at| seen.push(at)).expect("open");
        assert_eq!(seen, written);
        let next = wal.append(RecordKind::Logs, b"four").expect("append");
        assert!(next > written[2]);
    }

    #[test]
    fn a_snapshot_roll_replays_only_what_came_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seq = {
            let (mut wal, _) = Wal::open(dir.path(), DAY, 0, |_, _| {}).expect("open");
            wal.append(RecordKind::Metrics, b"before").expect("append");
            let seq = wal.roll_for_snapshot().expect("roll");
            wal.append(RecordKind::Metrics, b"after").expect("append");
            seq
        };
        // A crash between the snapshot and the deletion: reopening from the
        // snapshot's sequence skips (and deletes) the covered segment.
        let mut seen = Vec::new();
        let (mut wal, _) =
            Wal::open(dir.path(), DAY, seq, |_, p| seen.push(p.to_vec())).expect("open");
        assert_eq!(seen, vec![b"after".to_vec()]);
        assert!(
            segments(dir.path())
                .expect("list")
                .iter()
                .all(|(s, _)| *s >= seq)
        );
        let next = wal.roll_for_snapshot().expect("roll");
        wal.remove_before(next).expect("remove");
        assert_eq!(
            segments(dir.path())
                .expect("list")
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>(),
            vec![next]
        );
    }

    #[test]
    fn a_flipped_byte_stops_replay_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut wal, _) = Wal::open(dir.path(), DAY, 0, |_, _| {}).expect("open");
            wal.append(RecordKind::Metrics, b"good").expect("append");
            wal.append(RecordKind::Metrics, b"flipped").expect("append");
        }
        let (_, path) = segments(dir.path()).expect("list").remove(0);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let mut seen = Vec::new();
        let (_, recovery) =
            Wal::open(dir.path(), DAY, 0, |_, p| seen.push(p.to_vec())).expect("open");
        assert_eq!(seen, vec![b"good".to_vec()]);
        assert_eq!(recovery.truncated_bytes, (HEADER + 7) as u64);
    }

    #[test]
    fn unusable_directory_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().expect("file");
        let error = Wal::open(&file.path().join("wal"), DAY, 0, |_, _| {}).expect_err("not a dir");
        assert!(error.to_string().contains("write-ahead log"), "{error}");
    }
}
