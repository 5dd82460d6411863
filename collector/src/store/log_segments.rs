//! Log records on disk: append-only segment files under
//! `<data_dir>/logs/`, so `logs_max_bytes` (1 GiB) and `logs_retention`
//! (24 h) of records fit without holding them in memory.
//!
//! A segment `logs-<20-digit seq>.seg` is a run of frames, one per ingest
//! request:
//!
//! ```text
//! frame  = magic u32 | body length u32 | crc32(body) u32 | body
//! body   = wal seq u64 | wal offset u64 | records u32 | min time u64
//!          | max time u64 | record*
//! record = time varint | severity str | body str | pairs varint
//!          | (key str, value str)*        (str = varint length, UTF-8)
//! ```
//!
//! (little endian). A segment is sealed (fsynced) once it passes
//! [`SEGMENT_BYTES`] and a new one started; segments whose newest record
//! is older than the retention, and the oldest while the total passes the
//! byte bound, are deleted whole. A frame cut short or failing its
//! checksum at the end of a segment at open is a torn write: the segment
//! is cut there and the bytes counted, never fatal.
//!
//! **Durability and the write-ahead log.** The collector acknowledges a
//! request once it is in the write-ahead log; the frames here are written
//! to the page cache as requests are applied and fsynced when a segment
//! is sealed and before a snapshot lets the log drop the records they
//! cover ([`LogSegments::sync`]). Each frame carries the log position of
//! its request, and at open the newest position found is what the
//! segments cover: replay skips log requests at or before it and appends
//! the rest. So a record cut off here (a crash before the page cache was
//! written back) comes back from the log, and one already here is not
//! appended twice. Every new segment starts with an empty frame repeating
//! the covered position, so deleting old segments never forgets it.
//!
//! Queries read the files without the store's lock: a [`LogView`] lists
//! the segments and the bytes written to each when it was taken, and
//! frames are only ever appended, so the view stays consistent; a segment
//! deleted meanwhile is skipped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::LogRecord;
use super::tier::{Reader, put_prefixed, put_varint};
use super::wal::WalPosition;

const MAGIC: u32 = 0x544c_4f47; // "TLOG"
/// Frame header: magic, body length, checksum.
const FRAME_HEADER: usize = 12;
/// Body header: wal seq, wal offset, records, min time, max time.
const BODY_HEADER: usize = 36;
/// Segments are sealed past this size (or a quarter of the byte bound,
/// if smaller, so small bounds still rotate).
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// Smallest seal size whatever the bound.
const MIN_SEGMENT_BYTES: u64 = 4 << 10;
/// No frame may exceed this (the ingest body limit is far below).
const MAX_FRAME: usize = 256 << 20;

/// Segment file failures.
#[derive(Debug, thiserror::Error)]
pub enum LogSegmentError {
    /// A file operation failed.
    #[error("log segment {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogSegmentError + '_ {
    move |source| LogSegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an I/O error was doing, for counting and logging once each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Appending a frame or creating a segment.
    Write,
    /// Reading a segment for a query (or a frame failing its checksum).
    Read,
    /// Deleting a segment.
    Delete,
    /// Fsyncing a segment or the directory.
    Sync,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Write,
        ErrorKind::Read,
        ErrorKind::Delete,
        ErrorKind::Sync,
    ];

    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Write => "write",
            ErrorKind::Read => "read",
            ErrorKind::Delete => "delete",
            ErrorKind::Sync => "sync",
        }
    }
}

/// Counters shared with queries running outside the store's lock.
#[derive(Debug, Default)]
pub struct LogSegmentCounters {
    /// Records deleted because their segment passed the retention.
    pub dropped_retention: AtomicU64,
    /// Records deleted because the total passed the byte bound.
    pub dropped_size: AtomicU64,
    /// Bytes cut from torn or corrupt segment tails at open.
    pub torn_bytes: AtomicU64,
    errors: [AtomicU64; 4],
    logged: [AtomicBool; 4],
}

impl LogSegmentCounters {
    /// Counts an error and logs the first of its kind.
    fn error(&self, kind: ErrorKind, error: &dyn std::fmt::Display) {
        let index = kind as usize;
        self.errors[index].fetch_add(1, Ordering::Relaxed);
        if !self.logged[index].swap(true, Ordering::Relaxed) {
            tracing::warn!(kind = kind.label(), %error, "log segment error; log records may be missing (counted in tally_collector_log_segment_errors_total, logged once per kind)");
        }
    }

    /// Errors of `kind` so far.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Ordering::Relaxed)
    }
}

/// One segment's index: enough to expire it and order queries.
#[derive(Debug, Clone)]
struct Segment {
    seq: u64,
    path: PathBuf,
    bytes: u64,
    records: u64,
    /// Oldest and newest record time, ns (`None` while empty).
    times: Option<(u64, u64)>,
}

/// The segment files.
#[derive(Debug)]
pub struct LogSegments {
    dir: PathBuf,
    /// Oldest first; the last one is appended to unless sealed.
    segments: Vec<Segment>,
    /// The last segment, open for appending (`None` once sealed).
    active: Option<File>,
    /// A segment was created or deleted since the directory was fsynced.
    dir_dirty: bool,
    /// The active segment has frames not yet fsynced.
    file_dirty: bool,
    max_bytes: u64,
    retention_ns: u64,
    seal_bytes: u64,
    /// Newest write-ahead log position whose records are all here.
    covered: Option<WalPosition>,
    counters: Arc<LogSegmentCounters>,
}

/// What a query reads: segments and their lengths when it was taken,
/// oldest first.
#[derive(Debug, Clone)]
pub struct LogView {
    segments: Vec<(PathBuf, u64)>,
    counters: Arc<LogSegmentCounters>,
}

/// Which records a query wants.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Attribute pairs that must all be present.
    pub attributes: Vec<(String, String)>,
    /// Severity, compared without case.
    pub severity: Option<String>,
    /// Substring of the body.
    pub text: Option<String>,
}

impl LogFilter {
    /// True when `record` passes every filter.
    pub fn matches(&self, record: &LogRecord) -> bool {
        self.attributes.iter().all(|(key, value)| {
            record
                .attributes
                .iter()
                .any(|(k, v)| k == key && v == value)
        }) && self
            .severity
            .as_ref()
            .is_none_or(|s| record.severity.eq_ignore_ascii_case(s))
            && self
                .text
                .as_ref()
                .is_none_or(|t| record.body.contains(t.as_str()))
    }
}

fn segment_name(seq: u64) -> String {
    format!("logs-{seq:020}.seg")
}

fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogSegmentError> {
    super::wal::numbered_files(dir, "logs-", ".seg").map_err(io_error(dir))
}

/// Encodes one frame of `records`.
fn encode_frame(records: &[LogRecord], at: WalPosition) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        BODY_HEADER
            + records
                .iter()
                .map(|r| 16 + r.body.len() + r.severity.len())
                .sum::<usize>(),
    );
    let min = records.iter().map(|r| r.time_ns).min().unwrap_or(0);
    let max = records.iter().map(|r| r.time_ns).max().unwrap_or(0);
    body.extend_from_slice(&at.seq.to_le_bytes());
    body.extend_from_slice(&at.offset.to_le_bytes());
    body.extend_from_slice(&(records.len() as u32).to_le_bytes());
    body.extend_from_slice(&min.to_le_bytes());
    body.extend_from_slice(&max.to_le_bytes());
    for record in records {
        put_varint(&mut body, record.time_ns);
        put_prefixed(&mut body, record.severity.as_bytes());
        put_prefixed(&mut body, record.body.as_bytes());
        put_varint(&mut body, record.attributes.len() as u64);
        for (key, value) in &record.attributes {
            put_prefixed(&mut body, key.as_bytes());
            put_prefixed(&mut body, value.as_bytes());
        }
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
    frame.extend_from_slice(&MAGIC.to_le_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A frame's body header.
#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    at: WalPosition,
    records: u32,
    min: u64,
    max: u64,
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn frame_info(body: &[u8]) -> Option<FrameInfo> {
    Some(FrameInfo {
        at: WalPosition {
            seq: le_u64(body, 0)?,
            offset: le_u64(body, 8)?,
        },
        records: le_u32(body, 16)?,
        min: le_u64(body, 20)?,
        max: le_u64(body, 28)?,
    })
}

/// The frame at the start of `bytes`: (its body, bytes used), or `None`
/// when it is cut short or fails its checksum.
fn parse_frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    if le_u32(bytes, 0)? != MAGIC {
        return None;
    }
    let len = le_u32(bytes, 4)? as usize;
    if !(BODY_HEADER..=MAX_FRAME).contains(&len) {
        return None;
    }
    let body = bytes.get(FRAME_HEADER..FRAME_HEADER + len)?;
    (crc32fast::hash(body) == le_u32(bytes, 8)?).then_some((body, FRAME_HEADER + len))
}

/// A varint-prefixed UTF-8 string.
fn read_text(reader: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(reader.prefixed()?.to_vec()).ok()
}

/// One record as [`encode_frame`] writes it.
fn read_record(reader: &mut Reader<'_>) -> Option<LogRecord> {
    let time_ns = reader.varint()?;
    let severity = read_text(reader)?;
    let body = read_text(reader)?;
    let pairs = reader.varint()?;
    let mut attributes = Vec::new();
    for _ in 0..pairs {
        attributes.push((read_text(reader)?, read_text(reader)?));
    }
    Some(LogRecord {
        time_ns,
        severity,
        body,
        attributes,
    })
}

/// The records of a frame's body, in order; `None` if it does not decode
/// (it passed its checksum, so only a bug or a foreign file does that).
fn decode_records(body: &[u8]) -> Option<Vec<LogRecord>> {
    let info = frame_info(body)?;
    let mut reader = Reader::new(body.get(BODY_HEADER..)?);
    let mut records = Vec::with_capacity(info.records as usize);
    for _ in 0..info.records {
        records.push(read_record(&mut reader)?);
    }
    Some(records)
}

/// What scanning one segment at open found.
struct Scanned {
    segment: Segment,
    covered: Option<WalPosition>,
    /// Length of the intact frames (the rest is torn).
    intact: u64,
    file_len: u64,
}

/// Indexes a segment. Only its frame headers are read unless `verify`,
/// which checks every checksum (the newest segment, the one a crash can
/// have torn).
fn scan(seq: u64, path: &Path, verify: bool) -> Result<Scanned, LogSegmentError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let mut segment = Segment {
        seq,
        path: path.to_path_buf(),
        bytes: 0,
        records: 0,
        times: None,
    };
    let mut covered = None;
    let mut offset = 0u64;
    let mut add = |info: FrameInfo, segment: &mut Segment| {
        covered = covered.max(Some(info.at));
        if info.records > 0 {
            segment.records += u64::from(info.records);
            segment.times = Some(match segment.times {
                Some((min, max)) => (min.min(info.min), max.max(info.max)),
                None => (info.min, info.max),
            });
        }
    };
    if verify {
        let mut content = Vec::new();
        file.read_to_end(&mut content).map_err(io_error(path))?;
        let mut at = 0usize;
        while let Some((body, used)) = content.get(at..).and_then(parse_frame) {
            if let Some(info) = frame_info(body) {
                add(info, &mut segment);
            }
            at += used;
        }
        offset = at as u64;
    } else {
        let mut header = [0u8; FRAME_HEADER + BODY_HEADER];
        while offset + (FRAME_HEADER + BODY_HEADER) as u64 <= file_len {
            file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
            file.read_exact(&mut header).map_err(io_error(path))?;
            let len = le_u32(&header, 4).unwrap_or(0) as usize;
            let end = offset + (FRAME_HEADER + len) as u64;
            if le_u32(&header, 0) != Some(MAGIC)
                || !(BODY_HEADER..=MAX_FRAME).contains(&len)
                || end > file_len
            {
                break;
            }
            if let Some(info) = frame_info(&header[FRAME_HEADER..]) {
                add(info, &mut segment);
            }
            offset = end;
        }
    }
    segment.bytes = offset;
    Ok(Scanned {
        segment,
        covered,
        intact: offset,
        file_len,
    })
}

impl LogSegments {
    /// Opens (creating) the segments in `dir`, cutting torn tails, then
    /// applies the bounds as of `now_ns`.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        retention_ns: u64,
        now_ns: u64,
    ) -> Result<LogSegments, LogSegmentError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let counters = Arc::new(LogSegmentCounters::default());
        let found = list(dir)?;
        let mut segments = Vec::with_capacity(found.len());
        let mut covered = None;
        let newest = found.last().map(|(seq, _)| *seq);
        for (seq, path) in &found {
            let scanned = scan(*seq, path, Some(*seq) == newest)?;
            if scanned.intact < scanned.file_len {
                let cut = scanned.file_len - scanned.intact;
                counters.torn_bytes.fetch_add(cut, Ordering::Relaxed);
                tracing::warn!(
                    segment = %path.display(),
                    offset = scanned.intact,
                    bytes = cut,
                    "log segment has a torn or corrupt tail; cutting it (counted in tally_collector_log_torn_bytes_total)"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_error(path))?;
                file.set_len(scanned.intact).map_err(io_error(path))?;
                file.sync_all().map_err(io_error(path))?;
            }
            covered = covered.max(scanned.covered);
            segments.push(scanned.segment);
        }
        // Appends go to a new segment: the newest may be an older
        // process's, sealed or not.
        let mut store = LogSegments {
            dir: dir.to_path_buf(),
            segments,
            active: None,
            dir_dirty: false,
            file_dirty: false,
            max_bytes,
            retention_ns,
            seal_bytes: (max_bytes / 4).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES),
            covered,
            counters,
        };
        store.expire(now_ns);
        Ok(store)
    }

    /// The newest write-ahead log position whose records are all here.
    pub fn covered(&self) -> Option<WalPosition> {
        self.covered
    }

    /// Counters (shared with views).
    pub fn counters(&self) -> &Arc<LogSegmentCounters> {
        &self.counters
    }

    /// Bytes in segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Records in segment files.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Appends one request's records as a frame, then applies the byte
    /// bound. `at` is the request's write-ahead log position (`None` for
    /// records that have none, such as an old snapshot's). Errors are
    /// counted and logged once; the records stay in the write-ahead log
    /// until the next snapshot.
    pub fn append(
        &mut self,
        records: &[LogRecord],
        at: Option<WalPosition>,
    ) -> Result<(), LogSegmentError> {
        if records.is_empty() {
            return Ok(());
        }
        let at = at.unwrap_or_default().max(self.covered.unwrap_or_default());
        let frame = encode_frame(records, at);
        let result = self.write_frame(&frame);
        match &result {
            Ok(()) => {
                self.covered = Some(at);
                if let Some(segment) = self.segments.last_mut() {
                    segment.records += records.len() as u64;
                    let min = records.iter().map(|r| r.time_ns).min().unwrap_or(0);
                    let max = records.iter().map(|r| r.time_ns).max().unwrap_or(0);
                    segment.times = Some(match segment.times {
                        Some((a, b)) => (a.min(min), b.max(max)),
                        None => (min, max),
                    });
                }
            }
            Err(error) => self.counters.error(ErrorKind::Write, error),
        }
        let sealing = self
            .segments
            .last()
            .is_some_and(|s| s.bytes >= self.seal_bytes);
        if sealing {
            self.seal();
        }
        self.trim_to_size();
        result
    }

    /// Writes a frame to the active segment, creating one if needed. A
    /// failed write is cut back off and the segment sealed, so a later
    /// frame never follows a partial one.
    fn write_frame(&mut self, frame: &[u8]) -> Result<(), LogSegmentError> {
        if self.active.is_none() {
            self.start_segment()?;
        }
        let (Some(file), Some(segment)) = (self.active.as_mut(), self.segments.last_mut()) else {
            return Ok(());
        };
        match file.write_all(frame) {
            Ok(()) => {
                segment.bytes += frame.len() as u64;
                self.file_dirty = true;
                Ok(())
            }
            Err(source) => {
                let _ = file.set_len(segment.bytes);
                self.active = None;
                Err(LogSegmentError::Io {
                    path: segment.path.clone(),
                    source,
                })
            }
        }
    }

    /// Creates the next segment, starting with an empty frame that
    /// repeats the covered position.
    fn start_segment(&mut self) -> Result<(), LogSegmentError> {
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let path = self.dir.join(segment_name(seq));
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let marker = encode_frame(&[], self.covered.unwrap_or_default());
        if let Err(source) = file.write_all(&marker) {
            let _ = std::fs::remove_file(&path);
            return Err(LogSegmentError::Io { path, source });
        }
        self.segments.push(Segment {
            seq,
            path,
            bytes: marker.len() as u64,
            records: 0,
            times: None,
        });
        self.active = Some(file);
        self.dir_dirty = true;
        self.file_dirty = true;
        Ok(())
    }

    /// Fsyncs and closes the active segment.
    fn seal(&mut self) {
        if let Err(error) = self.sync() {
            self.counters.error(ErrorKind::Sync, &error);
        }
        self.active = None;
    }

    /// Makes every frame written so far durable (the active segment and
    /// the directory's entries). Called before a snapshot lets the
    /// write-ahead log drop the records these frames hold.
    pub fn sync(&mut self) -> Result<(), LogSegmentError> {
        if self.file_dirty
            && let (Some(file), Some(segment)) = (&self.active, self.segments.last())
        {
            file.sync_data().map_err(io_error(&segment.path))?;
        }
        self.file_dirty = false;
        if self.dir_dirty {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(&self.dir))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Deletes the oldest segments while the total passes the byte bound.
    fn trim_to_size(&mut self) {
        while self.bytes() > self.max_bytes && !self.segments.is_empty() {
            let (records, ok) = self.delete_oldest();
            if ok {
                self.counters
                    .dropped_size
                    .fetch_add(records, Ordering::Relaxed);
            } else {
                break;
            }
        }
        self.keep_covered_marker();
    }

    /// Deletes segments whose newest record is older than the retention.
    /// Segments are written in arrival order, not time order, so each is
    /// judged on its own.
    pub fn expire(&mut self, now_ns: u64) {
        let oldest = now_ns.saturating_sub(self.retention_ns);
        let mut index = 0;
        while index < self.segments.len() {
            let segment = &self.segments[index];
            // An older segment without records only repeats a position
            // that newer ones carry too.
            let expired = segment.times.is_some_and(|(_, max)| max < oldest)
                || (segment.records == 0 && index + 1 < self.segments.len());
            if !expired {
                index += 1;
                continue;
            }
            let records = segment.records;
            let path = segment.path.clone();
            if index + 1 == self.segments.len() && self.active.is_some() {
                self.seal();
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.segments.remove(index);
                    self.dir_dirty = true;
                    self.counters
                        .dropped_retention
                        .fetch_add(records, Ordering::Relaxed);
                }
                Err(source) => {
                    self.counters
                        .error(ErrorKind::Delete, &LogSegmentError::Io { path, source });
                    index += 1;
                }
            }
        }
        self.trim_to_size();
    }

    /// Deletes the oldest segment: (its records, deleted).
    fn delete_oldest(&mut self) -> (u64, bool) {
        let Some(oldest) = self.segments.first() else {
            return (0, false);
        };
        let (records, path) = (oldest.records, oldest.path.clone());
        if self.segments.len() == 1 && self.active.is_some() {
            self.seal();
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.segments.remove(0);
                self.dir_dirty = true;
                (records, true)
            }
            Err(source) => {
                self.counters
                    .error(ErrorKind::Delete, &LogSegmentError::Io { path, source });
                (records, false)
            }
        }
    }

    /// With every segment gone, a new one keeps the covered position.
    fn keep_covered_marker(&mut self) {
        if self.segments.is_empty()
            && self.covered.is_some()
            && let Err(error) = self.start_segment()
        {
            self.counters.error(ErrorKind::Write, &error);
        }
    }

    /// The segments as they are now, for a query outside the lock.
    pub fn view(&self) -> LogView {
        LogView {
            segments: self
                .segments
                .iter()
                .map(|s| (s.path.clone(), s.bytes))
                .collect(),
            counters: Arc::clone(&self.counters),
        }
    }
}

impl LogView {
    /// The newest `limit` records passing `filter`, newest last (in
    /// arrival order, as written). Segments that vanish meanwhile are
    /// skipped; a frame that fails its checksum ends that segment's scan
    /// and is counted as a read error.
    pub fn query(&self, filter: &LogFilter, limit: usize) -> Vec<LogRecord> {
        let mut newest_first = Vec::new();
        for (path, len) in self.segments.iter().rev() {
            if newest_first.len() >= limit {
                break;
            }
            let content = match read_prefix(path, *len) {
                Ok(Some(content)) => content,
                Ok(None) => continue,
                Err(error) => {
                    self.counters.error(ErrorKind::Read, &error);
                    continue;
                }
            };
            let mut bodies = Vec::new();
            let mut at = 0usize;
            while at < content.len() {
                match content.get(at..).and_then(parse_frame) {
                    Some((body, used)) => {
                        bodies.push(body);
                        at += used;
                    }
                    None => {
                        self.counters.error(
                            ErrorKind::Read,
                            &format!("{}: frame at byte {at} fails its checksum", path.display()),
                        );
                        break;
                    }
                }
            }
            for body in bodies.into_iter().rev() {
                if newest_first.len() >= limit {
                    break;
                }
                let Some(records) = decode_records(body) else {
                    self.counters.error(
                        ErrorKind::Read,
                        &format!("{}: a frame does not decode", path.display()),
                    );
                    continue;
                };
                newest_first.extend(
                    records
                        .into_iter()
                        .rev()
                        .filter(|r| filter.matches(r))
                        .take(limit - newest_first.len()),
                );
            }
        }
        newest_first.reverse();
        newest_first
    }
}

/// The first `len` bytes of `path`; `None` if it no longer exists.
fn read_prefix(path: &Path, len: u64) -> Result<Option<Vec<u8>>, LogSegmentError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LogSegmentError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut content = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut content)
        .map_err(io_error(path))?;
    Ok(Some(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000_000_000;
    const HOUR_NS: u64 = 3_600_000_000_000;

    fn record(time_ns: u64, pod: &str, severity: &str, body: &str) -> LogRecord {
        LogRecord {
            time_ns,
            severity: severity.into(),
            body: body.into(),
            attributes: vec![
                ("k8s.namespace.name".into(), "ml".into()),
                ("k8s.pod.name".into(), pod.into()),
            ],
        }
    }

    fn at(offset: u64) -> Option<WalPosition> {
        Some(WalPosition { seq: 1, offset })
    }

    fn bodies(records: &[LogRecord]) -> Vec<String> {
        records.iter().map(|r| r.body.clone()).collect()
    }

    fn all(segments: &LogSegments) -> Vec<LogRecord> {
        segments.view().query(&LogFilter::default(), usize::MAX)
    }

    #[test]
    fn appended_records_come_back_newest_last_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segments = LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("open");
        assert_eq!(segments.covered(), None);
        segments
            .append(
                &[
                    record(T0, "a", "INFO", "one"),
                    record(T0 + 1, "b", "error", "two"),
                ],
                at(0),
            )
            .expect("append");
        segments
            .append(&[record(T0 + 2, "a", "info", "three café")], at(100))
            .expect("append");
        assert_eq!(bodies(&all(&segments)), ["one", "two", "three café"]);
        assert_eq!(
            bodies(&segments.view().query(&LogFilter::default(), 2)),
            ["two", "three café"]
        );
        assert_eq!(segments.records(), 3);
        assert_eq!(segments.covered(), at(100));
        let bytes = segments.bytes();
        drop(segments);

        let segments = LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("reopen");
        assert_eq!(segments.covered(), at(100));
        assert_eq!(segments.bytes(), bytes);
        assert_eq!(segments.records(), 3);
        assert_eq!(all(&segments), {
            let mut expected = vec![
                record(T0, "a", "INFO", "one"),
                record(T0 + 1, "b", "error", "two"),
                record(T0 + 2, "a", "info", "three café"),
            ];
            expected.truncate(3);
            expected
        });
        assert_eq!(segments.counters().torn_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn filters_pick_by_attribute_severity_and_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segments = LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("open");
        for i in 0..50u64 {
            let pod = if i % 2 == 0 { "even" } else { "odd" };
            let severity = if i % 5 == 0 { "ERROR" } else { "info" };
            segments
                .append(
                    &[record(T0 + i, pod, severity, &format!("request {i} done"))],
                    at(i),
                )
                .expect("append");
        }
        let query = |filter: LogFilter, limit| bodies(&segments.view().query(&filter, limit));
        let errors = LogFilter {
            severity: Some("error".into()),
            ..Default::default()
        };
        assert_eq!(
            query(errors.clone(), 3),
            ["request 35 done", "request 40 done", "request 45 done"]
        );
        let odd_errors = LogFilter {
            attributes: vec![("k8s.pod.name".into(), "odd".into())],
            ..errors
        };
        assert_eq!(
            query(odd_errors, 100),
            [
                "request 5 done",
                "request 15 done",
                "request 25 done",
                "request 35 done",
                "request 45 done"
            ]
        );
        let text = LogFilter {
            text: Some("request 1".into()),
            attributes: vec![("k8s.namespace.name".into(), "ml".into())],
            ..Default::default()
        };
        assert_eq!(query(text, 100).len(), 11);
        let nobody = LogFilter {
            attributes: vec![("k8s.namespace.name".into(), "web".into())],
            ..Default::default()
        };
        assert!(query(nobody, 100).is_empty());
    }

    #[test]
    fn segments_seal_at_their_size_and_the_oldest_go_past_the_byte_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 64 KiB in all: segments seal at 16 KiB.
        let mut segments = LogSegments::open(dir.path(), 64 << 10, 24 * HOUR_NS, T0).expect("open");
        let body = "x".repeat(1000);
        for i in 0..200u64 {
            segments
                .append(
                    &[record(T0 + i, "a", "info", &format!("{i} {body}"))],
                    at(i),
                )
                .expect("append");
            assert!(segments.bytes() <= 64 << 10, "{}", segments.bytes());
        }
        assert!(
            segments.segment_count() >= 3,
            "{}",
            segments.segment_count()
        );
        let on_disk = list(dir.path()).expect("list").len();
        assert_eq!(on_disk, segments.segment_count());
        let kept = all(&segments);
        let dropped = segments.counters().dropped_size.load(Ordering::Relaxed);
        assert_eq!(kept.len() as u64 + dropped, 200);
        assert_eq!(kept.len() as u64, segments.records());
        // The newest are kept, in order, with no gap.
        let first: u64 = kept[0]
            .body
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("seq");
        assert_eq!(first, dropped);
        assert!(kept.last().is_some_and(|r| r.body.starts_with("199 ")));
        // Reopening finds the same.
        drop(segments);
        let segments = LogSegments::open(dir.path(), 64 << 10, 24 * HOUR_NS, T0).expect("reopen");
        assert_eq!(all(&segments), kept);
        assert_eq!(segments.covered(), at(199));
    }

    #[test]
    fn segments_past_the_retention_go_whole_and_the_covered_position_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segments = LogSegments::open(dir.path(), 1 << 30, HOUR_NS, T0).expect("open");
        segments
            .append(&[record(T0, "a", "info", "old")], at(1))
            .expect("append");
        // Sealed by a restart: the next records go to a new segment.
        drop(segments);
        let mut segments = LogSegments::open(dir.path(), 1 << 30, HOUR_NS, T0).expect("reopen");
        segments
            .append(&[record(T0 + 2 * HOUR_NS, "a", "info", "new")], at(2))
            .expect("append");
        segments.expire(T0 + 2 * HOUR_NS + 1);
        assert_eq!(bodies(&all(&segments)), ["new"]);
        assert_eq!(
            segments
                .counters()
                .dropped_retention
                .load(Ordering::Relaxed),
            1
        );
        // Everything old: every segment goes, the position is kept.
        segments.expire(T0 + 10 * HOUR_NS);
        assert!(all(&segments).is_empty());
        assert_eq!(
            segments
                .counters()
                .dropped_retention
                .load(Ordering::Relaxed),
            2
        );
        drop(segments);
        let segments =
            LogSegments::open(dir.path(), 1 << 30, HOUR_NS, T0 + 10 * HOUR_NS).expect("reopen");
        assert_eq!(segments.covered(), at(2));
        assert_eq!(segments.records(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segments = LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("open");
        segments
            .append(&[record(T0, "a", "info", "kept")], at(10))
            .expect("append");
        drop(segments);
        // A crash halfway through the next frame.
        let frame = encode_frame(
            &[record(T0 + 1, "a", "info", "torn")],
            WalPosition { seq: 1, offset: 20 },
        );
        let (_, path) = list(dir.path()).expect("list").pop().expect("segment");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&frame[..frame.len() / 2]).expect("write");
        drop(file);
        let intact = std::fs::metadata(&path).expect("meta").len() - (frame.len() / 2) as u64;

        let mut segments =
            LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("reopen");
        assert_eq!(
            segments.counters().torn_bytes.load(Ordering::Relaxed),
            (frame.len() / 2) as u64
        );
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), intact);
        // The torn request is not covered: replay appends it again.
        assert_eq!(segments.covered(), at(10));
        segments
            .append(&[record(T0 + 1, "a", "info", "torn")], at(20))
            .expect("append");
        assert_eq!(bodies(&all(&segments)), ["kept", "torn"]);
        // A flipped byte in the last frame counts as torn too.
        drop(segments);
        let (_, path) = list(dir.path()).expect("list").pop().expect("segment");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let segments = LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("reopen");
        assert_eq!(bodies(&all(&segments)), ["kept"]);
        assert_eq!(segments.covered(), at(10));
    }

    #[test]
    fn a_deleted_segment_is_skipped_by_a_view_taken_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segments = LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("open");
        segments
            .append(&[record(T0, "a", "info", "one")], at(1))
            .expect("append");
        drop(segments);
        let mut segments =
            LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("reopen");
        segments
            .append(&[record(T0, "a", "info", "two")], at(2))
            .expect("append");
        let view = segments.view();
        let (_, oldest) = list(dir.path()).expect("list").remove(0);
        std::fs::remove_file(oldest).expect("remove");
        assert_eq!(bodies(&view.query(&LogFilter::default(), 10)), ["two"]);
        assert_eq!(segments.counters().errors(ErrorKind::Read), 0);
    }

    #[test]
    fn an_unusable_directory_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().expect("file");
        let error = LogSegments::open(&file.path().join("logs"), 1 << 30, HOUR_NS, T0)
            .expect_err("not a directory");
        assert!(error.to_string().contains("log segment"), "{error}");
    }
}
