//! Following one log file through rotation: the lines it gains, each with
//! the offset just past it (what a checkpoint commits once the line is
//! delivered).
//!
//! A file is known by its device and inode plus the first bytes it holds
//! (its fingerprint), so a rename-and-create rotation (kubelet's), a
//! copytruncate and a plain truncation are all told apart:
//! - the path now names another file: the old one is read to its end from
//!   the open handle before the new one starts at its beginning;
//! - the open file shrank below the offset: it was copy-truncated (a
//!   sibling `<name>.<suffix>` starts with its fingerprint: that copy is
//!   read from the old offset to its end, then the path from 0) or just
//!   truncated (reading starts again at 0);
//! - the path is gone: the file is finished from the open handle.
//!
//! Only whole lines are handed out; a line still being written stays
//! unread until its newline arrives. A line longer than `max_line` is
//! handed out cut at that length (flagged) and the rest of it skipped, so
//! memory stays bounded whatever the file holds.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of a file's head that identify it.
pub const FINGERPRINT_BYTES: usize = 256;

/// A file's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Up to [`FINGERPRINT_BYTES`] of its head (fewer while it is shorter).
    pub fingerprint: Vec<u8>,
}

impl FileId {
    /// Whether `other` is the same file, perhaps grown since (one
    /// fingerprint is a prefix of the other).
    pub fn same_file(&self, other: &FileId) -> bool {
        let n = self.fingerprint.len().min(other.fingerprint.len());
        self.dev == other.dev
            && self.ino == other.ino
            && self.fingerprint[..n] == other.fingerprint[..n]
    }
}

/// One whole line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its bytes, without the newline (at most `max_line`).
    pub bytes: Vec<u8>,
    /// Bytes of it cut past `max_line`.
    pub cut: u64,
    /// The offset just past its newline in the file it came from.
    pub end: u64,
    /// That file (the old one for the last lines before a rotation).
    pub file: Arc<FileId>,
}

/// What changed since the last read, besides lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// The path was rotated to a new file.
    pub rotated: bool,
    /// The file shrank (truncation or copytruncate).
    pub truncated: bool,
    /// The file shrank and its copytruncate copy was found: the copy is
    /// read from the old offset before the path is read again.
    pub copied: bool,
    /// The path is gone and the file was read to its end.
    pub finished: bool,
    /// A file left at its end for the one the path names now (a rotated
    /// file, a copytruncate's copy): its final offset, for its
    /// checkpoint even when no line of it was read this time.
    pub left: Option<(FileId, u64)>,
}

/// A followed file.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    file: File,
    /// Shared with every line read from it (a clone per line would copy
    /// the fingerprint).
    id: Arc<FileId>,
    offset: u64,
    max_line: usize,
    /// The head of a line longer than `max_line` was handed out; skip to
    /// its newline.
    skipping: bool,
}

/// The identity of the file at `path` now.
pub fn file_id(path: &Path) -> io::Result<FileId> {
    identity(&mut File::open(path)?)
}

fn identity(file: &mut File) -> io::Result<FileId> {
    let meta = file.metadata()?;
    let mut fingerprint = vec![0u8; FINGERPRINT_BYTES];
    let mut filled = 0;
    file.seek(SeekFrom::Start(0))?;
    while filled < FINGERPRINT_BYTES {
        let n = file.read(&mut fingerprint[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    fingerprint.truncate(filled);
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        fingerprint,
    })
}

/// The whole lines of `buffer` (read at `base` of the file `id`): each
/// cut at `max_line` (the rest of a cut line is skipped, across calls,
/// through `skipping`), and how many bytes were consumed. A last line
/// without its newline stays unconsumed, unless it is already longer
/// than `max_line`: then its head goes out and the rest is skipped.
pub(super) fn split_lines(
    buffer: &[u8],
    base: u64,
    max_line: usize,
    skipping: &mut bool,
    id: &Arc<FileId>,
) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(newline) = buffer[start..].iter().position(|b| *b == b'\n') {
        let line = &buffer[start..start + newline];
        let end = base + (start + newline + 1) as u64;
        if *skipping {
            *skipping = false;
        } else {
            let keep = line.len().min(max_line);
            lines.push(Line {
                bytes: line[..keep].to_vec(),
                cut: (line.len() - keep) as u64,
                end,
                file: Arc::clone(id),
            });
        }
        start += newline + 1;
    }
    let rest = buffer.len() - start;
    if rest >= max_line && !*skipping {
        lines.push(Line {
            bytes: buffer[start..start + max_line].to_vec(),
            cut: (rest - max_line) as u64,
            end: base + buffer.len() as u64,
            file: Arc::clone(id),
        });
        *skipping = true;
        start = buffer.len();
    } else if *skipping {
        start = buffer.len();
    }
    (lines, start)
}

impl Tailer {
    /// Opens `path` and starts at `offset` (0, or a checkpoint's offset
    /// when the checkpoint's file identity matches; beyond the end means
    /// the file was truncated and reading starts at 0).
    pub fn open(path: &Path, offset: u64, max_line: usize) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let id = Arc::new(identity(&mut file)?);
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            id,
            offset: if offset > len { 0 } else { offset },
            max_line: max_line.max(1),
            skipping: false,
        })
    }

    /// The followed file's identity.
    pub fn id(&self) -> &FileId {
        &self.id
    }

    /// The offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads whole lines, at most `budget` bytes of file per call (the
    /// caller's queue bounds memory; the rest waits for the next call).
    pub fn read(&mut self, budget: usize) -> io::Result<(Vec<Line>, Events)> {
        // A budget below one whole line would never get past it.
        let budget = budget.max(self.max_line + 1);
        let mut events = Events::default();
        let len = self.file.metadata()?.len();
        if len < self.offset {
            events.truncated = true;
            self.skipping = false;
            // A copytruncate leaves the lines written since the last read
            // in the copy: finish it from this offset, then come back to
            // the path (now another file) at its start.
            match self.find_copy()? {
                Some((copy, id)) => {
                    self.file = copy;
                    self.id = Arc::new(id);
                    events.copied = true;
                }
                None => self.offset = 0,
            }
        }
        // Refresh the fingerprint while the file is younger than it.
        if self.id.fingerprint.len() < FINGERPRINT_BYTES {
            let grown = identity(&mut self.file)?;
            if grown.fingerprint.starts_with(&self.id.fingerprint) {
                self.id = Arc::new(grown);
            } else {
                // Same inode, other head: rewritten from the start.
                events.truncated = true;
                self.id = Arc::new(grown);
                self.offset = 0;
            }
        }
        let mut lines = self.read_lines(budget)?;
        if self.offset < self.file.metadata()?.len() {
            // More to read here first; rotation is looked at once the old
            // file is read to its end.
            return Ok((lines, events));
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.ino() == self.id.ino && meta.dev() == self.id.dev => {}
            Ok(_) => {
                // Rotated: the old file is read to its end (above); the
                // path's new file starts at 0.
                let mut file = File::open(&self.path)?;
                events.left = Some(((*self.id).clone(), self.offset));
                self.id = Arc::new(identity(&mut file)?);
                self.file = file;
                self.offset = 0;
                self.skipping = false;
                events.rotated = true;
                lines.extend(self.read_lines(budget)?);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => events.finished = true,
            Err(error) => return Err(error),
        }
        Ok((lines, events))
    }

    /// The copy a copytruncate left beside the path: a sibling named
    /// `<name>.<suffix>` (not compressed) that starts with this file's
    /// fingerprint and holds at least the bytes already read.
    fn find_copy(&self) -> io::Result<Option<(File, FileId)>> {
        let (Some(dir), Some(name)) = (
            self.path.parent(),
            self.path.file_name().and_then(|n| n.to_str()),
        ) else {
            return Ok(None);
        };
        if self.id.fingerprint.is_empty() {
            return Ok(None);
        }
        let prefix = format!("{name}.");
        for entry in std::fs::read_dir(dir)?.flatten() {
            let sibling = entry.file_name();
            let Some(sibling) = sibling.to_str() else {
                continue;
            };
            if !sibling.starts_with(&prefix) || sibling.ends_with(".gz") {
                continue;
            }
            let Ok(mut copy) = File::open(entry.path()) else {
                continue;
            };
            let Ok(id) = identity(&mut copy) else {
                continue;
            };
            let len = copy.metadata().map(|m| m.len()).unwrap_or(0);
            if id.fingerprint.starts_with(&self.id.fingerprint)
                && (id.dev, id.ino) != (self.id.dev, self.id.ino)
                && len >= self.offset
            {
                return Ok(Some((copy, id)));
            }
        }
        Ok(None)
    }

    fn read_lines(&mut self, budget: usize) -> io::Result<Vec<Line>> {
        let len = self.file.metadata()?.len();
        if self.offset >= len {
            return Ok(Vec::new());
        }
        let want = (len - self.offset).min(budget.max(1) as u64) as usize;
        let mut buffer = vec![0u8; want];
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut filled = 0;
        while filled < want {
            let n = self.file.read(&mut buffer[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buffer.truncate(filled);
        let (lines, start) = split_lines(
            &buffer,
            self.offset,
            self.max_line,
            &mut self.skipping,
            &self.id,
        );
        self.offset += start as u64;
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("write");
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect()
    }

    #[test]
    fn whole_lines_only_and_a_partial_line_completed_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, "one\ntwo\nthr");
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        let (lines, events) = tail.read(1 << 20).expect("read");
        assert_eq!(texts(&lines), ["one", "two"]);
        assert_eq!(lines[1].end, 8);
        assert_eq!(events, Events::default());
        append(&path, "ee\n");
        let (lines, _) = tail.read(1 << 20).expect("read");
        assert_eq!(texts(&lines), ["three"]);
        assert_eq!(tail.offset(), 14);
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, "a1\n");
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        assert_eq!(texts(&tail.read(1 << 20).expect("read").0), ["a1"]);
        // Written after our read, then kubelet renames and the runtime
        // reopens a new file.
        append(&path, "a2\n");
        std::fs::rename(&path, dir.path().join("0.log.20261201-161500")).expect("rename");
        append(&path, "b1\n");
        let (lines, events) = tail.read(1 << 20).expect("read");
        assert_eq!(texts(&lines), ["a2", "b1"], "the old file to its end first");
        assert!(events.rotated);
        assert!(!lines[0].file.same_file(&lines[1].file));
        assert_eq!(lines[1].end, 3, "offsets are per file");
    }

    #[test]
    fn a_truncation_without_a_copy_starts_again_at_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "old line one\nold line two\n");
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        assert_eq!(tail.read(1 << 20).expect("read").0.len(), 2);
        std::fs::write(&path, "new\n").expect("truncate and write");
        let (lines, events) = tail.read(1 << 20).expect("read");
        assert!(events.truncated && !events.copied);
        assert_eq!(texts(&lines), ["new"]);
    }

    #[test]
    fn copytruncate_reads_the_copy_from_the_old_offset_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "a1 first line of the file\n");
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        assert_eq!(texts(&tail.read(1 << 20).expect("read").0).len(), 1);
        append(&path, "a2 written before the copy\n");
        // An unrelated older copy is not taken for this one.
        std::fs::write(dir.path().join("app.log.2"), "other file\n").expect("write");
        std::fs::copy(&path, dir.path().join("app.log.1")).expect("copy");
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("truncate");
        append(&path, "b1\n");
        let (lines, events) = tail.read(1 << 20).expect("read");
        assert!(events.truncated && events.copied);
        assert_eq!(texts(&lines), ["a2 written before the copy", "b1"]);
        append(&path, "b2\n");
        assert_eq!(texts(&tail.read(1 << 20).expect("read").0), ["b2"]);
    }

    #[test]
    fn a_deleted_file_is_finished_from_the_handle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, "x\n");
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("writer");
        std::fs::remove_file(&path).expect("remove");
        writer.write_all(b"y\n").expect("write");
        let (lines, events) = tail.read(1 << 20).expect("read");
        assert_eq!(texts(&lines), ["x", "y"]);
        let (lines, events2) = tail.read(1 << 20).expect("read");
        assert!(lines.is_empty());
        assert!(events.finished || events2.finished);
    }

    #[test]
    fn an_endless_line_is_cut_and_memory_stays_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, &"z".repeat(10_000));
        let mut tail = Tailer::open(&path, 0, 100).expect("open");
        let (lines, _) = tail.read(1 << 20).expect("read");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].bytes.len(), 100);
        assert_eq!(lines[0].cut, 9_900);
        append(&path, &format!("{}\nnext\n", "z".repeat(5_000)));
        let (lines, _) = tail.read(1 << 20).expect("read");
        assert_eq!(texts(&lines), ["next"], "the cut line's rest is skipped");
    }

    #[test]
    fn a_small_budget_still_gets_through_long_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, &format!("{}\nshort\n", "q".repeat(500)));
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(texts(&tail.read(10).expect("read").0));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].len(), 500);
        assert_eq!(seen[1], "short");
    }

    #[test]
    fn a_checkpoint_resumes_and_identity_survives_growth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, "l1\nl2\n");
        let mut tail = Tailer::open(&path, 0, 1024).expect("open");
        let first = tail.read(1 << 20).expect("read").0;
        let early = first[0].file.clone();
        append(&path, &"l3\n".repeat(200));
        let later = Tailer::open(&path, first[0].end, 1024).expect("reopen");
        assert!(early.same_file(later.id()), "a fingerprint that grew");
        let mut resumed = later;
        let lines = resumed.read(1 << 20).expect("read").0;
        assert_eq!(texts(&lines)[0], "l2", "resumes after the committed line");
        // A checkpoint past the end: the file was truncated meanwhile.
        assert_eq!(
            Tailer::open(&path, 1 << 40, 1024).expect("open").offset(),
            0
        );
    }
}
