//! Store snapshots: the whole store in one checksummed file, so a restart
//! reads one file and replays only the write-ahead log written since,
//! instead of every request of the retention window.
//!
//! File: `[magic u32]["version" u32][wal seq u64][body len u64][crc32 u32][body]`.
//! The body packs the series (sealed tiers and raw chunks byte for byte,
//! so loading does no re-encoding), the agents seen and the log records.
//!
//! Version 2 (written now) starts the body with a table of every distinct
//! string and one of every distinct label set (a container's ~30 series
//! share one), then holds the series in blocks of [`BLOCK_SERIES`] that
//! refer to them by number; blocks are encoded and decoded on all cores,
//! and tiers are taken as they are, trusting the checksum. Version 1
//! (labels spelled out per series) is still read.
//! A snapshot is written to a temporary file a few blocks at a time, and
//! the history each block holds is read from the file from then on
//! ([`super::cold`]); the file is then fsynced and renamed over the
//! previous one, and only then are the log segments it covers deleted.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;

use super::cold::{ColdFile, Placed, Span};
use super::hot::HotArena;
use super::labels::{LabelSet, Labels};
use super::raw::{RawWindow, WrittenChunks};
use super::tier::{Reader, Tier, Written, put_prefixed, put_varint};
use super::{AgentSeen, LogRecord, Series, SeriesKind, Store, StoreLimits, StoreStats};

const MAGIC: u32 = 0x5441_4c53; // "TALS"
const VERSION: u32 = 2;
/// Series per block of a version 2 body.
const BLOCK_SERIES: usize = 2048;
const HEADER: usize = 4 + 4 + 8 + 8 + 4;
/// File name inside the data directory.
pub const FILE_NAME: &str = "snapshot.bin";

/// Snapshot failures.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A series' history could not be read from the previous snapshot
    /// file (the read error is logged and counted); nothing was written.
    #[error(
        "snapshot not written: series history could not be read from the previous snapshot file"
    )]
    ColdRead,
    /// A series disappeared while the store was locked for the snapshot
    /// (a bug: nothing was written).
    #[error("snapshot not written: the store changed while it was being written")]
    Changed,
    /// The file is not a snapshot this version can read, or is damaged.
    #[error("snapshot {path} is unreadable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A snapshot's content.
#[derive(Debug)]
pub struct Loaded {
    /// The store as it was.
    pub store: Store,
    /// First write-ahead log segment not covered by the snapshot.
    pub wal_seq: u64,
}

/// Every distinct string once, numbered in order of first use.
#[derive(Default)]
struct StringTable<'s> {
    ids: HashMap<&'s str, u32>,
    list: Vec<&'s str>,
}

impl<'s> StringTable<'s> {
    fn id(&mut self, text: &'s str) -> u32 {
        *self.ids.entry(text).or_insert_with(|| {
            self.list.push(text);
            (self.list.len() - 1) as u32
        })
    }
}

/// Where one series' history went in a block being written.
#[derive(Debug)]
struct Placement {
    series: usize,
    hours: Written,
    days: Written,
    raw: WrittenChunks,
}

/// Blocks encoded at once (on all cores) before they are written: bounds
/// the memory a snapshot needs to a few blocks, whatever the store's size.
const BLOCKS_AT_ONCE: usize = 8;

/// A snapshot file being written: its header is written last, once the
/// body's length and checksum are known.
struct Output {
    file: File,
    path: PathBuf,
    crc: crc32fast::Hasher,
    offset: u64,
}

impl Output {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.file
            .write_all(bytes)
            .map_err(|source| SnapshotError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.crc.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

/// A snapshot written to its temporary file, whose history the store
/// already reads from it; [`Pending::commit`] makes it the snapshot.
#[derive(Debug)]
pub struct Pending {
    file: Arc<ColdFile>,
    temporary: PathBuf,
    dir: PathBuf,
    len: u64,
}

impl Pending {
    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file (never: there is always a header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the file durable and the snapshot in its directory: fsync,
    /// rename over the previous one, directory fsync. Needs no lock: the
    /// store only reads the file.
    pub fn commit(self) -> Result<u64, SnapshotError> {
        let path = self.dir.join(FILE_NAME);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        self.file.sync().map_err(io(&self.temporary))?;
        std::fs::rename(&self.temporary, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(self.len)
    }
}

/// Writes `store` as a snapshot covering the log before `wal_seq` to a
/// temporary file in `dir`, streaming a few blocks at a time (cold history
/// is read from the previous file and copied), and makes the history it
/// wrote cold: from now on each series reads it from the new file. Runs
/// under the store's lock; [`Pending::commit`] finishes outside it.
pub fn write(store: &mut Store, dir: &Path, wal_seq: u64) -> Result<Pending, SnapshotError> {
    let temporary = dir.join(format!("{FILE_NAME}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    // A failed commit may have left the temporary file as the one series
    // read from: unlink it (open descriptors keep it) rather than truncate.
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(&temporary)(error));
        }
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(io(&temporary))?;
    let mut out = Output {
        file,
        path: temporary.clone(),
        crc: crc32fast::Hasher::new(),
        offset: HEADER as u64,
    };
    out.file.write_all(&[0; HEADER]).map_err(io(&temporary))?;

    // Tables of strings and label sets, and each series' entries in them.
    let (keys, refs, tables) = {
        let mut strings = StringTable::default();
        // Sets by address: series of one container share one interned set.
        let mut sets: HashMap<*const LabelSet, u32> = HashMap::new();
        let mut set_list: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut keys = Vec::with_capacity(store.series_count());
        let mut refs = Vec::with_capacity(store.series_count());
        for s in store.all_series() {
            let name = strings.id(s.metric());
            let set = *sets.entry(Arc::as_ptr(&s.labels)).or_insert_with(|| {
                let pairs = s
                    .labels
                    .iter()
                    .map(|(k, v)| (strings.id(k), strings.id(v)))
                    .collect();
                set_list.push(pairs);
                (set_list.len() - 1) as u32
            });
            keys.push((Arc::clone(&s.metric), Arc::clone(&s.labels)));
            refs.push((name, set));
        }
        let mut tables = Vec::with_capacity(1 << 20);
        put_varint(&mut tables, strings.list.len() as u64);
        for text in &strings.list {
            put_prefixed(&mut tables, text.as_bytes());
        }
        put_varint(&mut tables, set_list.len() as u64);
        for pairs in &set_list {
            put_varint(&mut tables, pairs.len() as u64);
            for (k, v) in pairs {
                put_varint(&mut tables, u64::from(*k));
                put_varint(&mut tables, u64::from(*v));
            }
        }
        (keys, refs, tables)
    };
    out.put(&tables)?;
    drop(tables);
    let blocks: Vec<std::ops::Range<usize>> = (0..keys.len())
        .step_by(BLOCK_SERIES)
        .map(|start| start..(start + BLOCK_SERIES).min(keys.len()))
        .collect();
    let mut count = Vec::with_capacity(10);
    put_varint(&mut count, blocks.len() as u64);
    out.put(&count)?;
    let file = ColdFile::new(
        out.file.try_clone().map_err(io(&temporary))?,
        &dir.join(FILE_NAME),
    );
    for group in blocks.chunks(BLOCKS_AT_ONCE) {
        let encoded = {
            let shared: &Store = store;
            let series: Vec<&Series> = (group[0].start..group[group.len() - 1].end)
                .map(|i| shared.series(&keys[i].0, &keys[i].1))
                .collect::<Option<_>>()
                .ok_or(SnapshotError::Changed)?;
            let first = group[0].start;
            crate::parallel::map_on_cores(group, 1, |range| {
                // Sized up front: growing a block by doubling would copy it.
                let size = series[range.start - first..range.end - first]
                    .iter()
                    .map(|s| s.heap_bytes() + s.hot_bytes() + s.cold_bytes() + 128)
                    .sum::<usize>();
                let mut block = Vec::with_capacity(size + 16);
                let mut placements = Vec::with_capacity(range.len());
                put_varint(&mut block, range.len() as u64);
                for i in range.clone() {
                    let (hours, days, raw) =
                        write_series(&mut block, series[i - first], refs[i], &shared.hot)?;
                    placements.push(Placement {
                        series: i,
                        hours,
                        days,
                        raw,
                    });
                }
                Some((block, placements))
            })
        };
        for block in encoded {
            let (block, placements) = block.ok_or(SnapshotError::ColdRead)?;
            let mut prefix = Vec::with_capacity(10);
            put_varint(&mut prefix, block.len() as u64);
            out.put(&prefix)?;
            let block_offset = out.offset;
            out.put(&block)?;
            drop(block);
            let span = |at: usize, len: u32| Span {
                file: Arc::clone(&file),
                offset: block_offset + at as u64,
                len,
            };
            for placement in placements {
                let (metric, labels) = &keys[placement.series];
                let hot = &mut store.hot;
                let Some(series) = store
                    .metrics
                    .get_mut(metric)
                    .and_then(|m| m.get_mut(labels))
                else {
                    continue;
                };
                let (hours, days, raw) = (&placement.hours, &placement.days, &placement.raw);
                series.hours.adopt(hot, hours, span(hours.at, hours.len));
                series.days.adopt(hot, days, span(days.at, days.len));
                series.recent.adopt(hot, raw, span(raw.at, raw.len));
            }
        }
    }
    // What the file now holds is garbage in the arena: keep the little
    // that stayed hot, give the segments back.
    store.compact_hot();
    let mut rest = Vec::new();
    write_rest(&mut rest, store);
    out.put(&rest)?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&wal_seq.to_le_bytes());
    header.extend_from_slice(&(out.offset - HEADER as u64).to_le_bytes());
    header.extend_from_slice(&out.crc.clone().finalize().to_le_bytes());
    {
        use std::os::unix::fs::FileExt;
        out.file.write_all_at(&header, 0).map_err(io(&temporary))?;
    }
    Ok(Pending {
        file,
        temporary,
        dir: dir.to_path_buf(),
        len: out.offset,
    })
}

/// Agents, log records and counters: the end of the body.
fn write_rest(body: &mut Vec<u8>, store: &Store) {
    put_varint(body, store.agents.len() as u64);
    for agent in store.agents.values() {
        put_prefixed(body, agent.service.as_bytes());
        put_prefixed(body, agent.node.as_bytes());
        put_prefixed(body, agent.version.as_bytes());
        put_varint(body, agent.last_push_ns);
        put_varint(body, agent.last_point_ns);
        put_varint(body, agent.batches);
        body.push(u8::from(agent.simulated));
    }
    put_varint(body, store.logs.len() as u64);
    for record in &store.logs {
        put_varint(body, record.time_ns);
        put_prefixed(body, record.severity.as_bytes());
        put_prefixed(body, record.body.as_bytes());
        put_varint(body, record.attributes.len() as u64);
        for (k, v) in &record.attributes {
            put_prefixed(body, k.as_bytes());
            put_prefixed(body, v.as_bytes());
        }
    }
    for counter in [
        store.stats.samples,
        store.stats.resets,
        store.stats.log_records,
        store.stats.series_limited,
    ] {
        put_varint(body, counter);
    }
}

/// A tier's record count and newest start, ahead of its records.
fn write_tier_header(out: &mut Vec<u8>, len: usize, last_start: Option<u32>) {
    put_varint(out, len as u64);
    put_varint(out, last_start.map_or(0, |start| u64::from(start) + 1));
}

fn write_tier(out: &mut Vec<u8>, tier: &Tier, hot: &HotArena) -> Option<Written> {
    write_tier_header(out, tier.len(), tier.last_start());
    tier.write_prefixed(hot, out)
}

/// Writes one series; `None` when its cold history cannot be read.
fn write_series(
    out: &mut Vec<u8>,
    series: &Series,
    (name, set): (u32, u32),
    hot: &HotArena,
) -> Option<(Written, Written, WrittenChunks)> {
    put_varint(out, u64::from(name));
    put_varint(out, u64::from(set));
    out.push(series.kind.code());
    // The open hour as a one-record tier.
    match &series.open {
        Some((hour, aggregate)) => {
            write_tier_header(out, 1, Some(*hour));
            put_prefixed(out, &super::tier::encode_record(*hour, aggregate));
        }
        None => {
            write_tier_header(out, 0, None);
            put_prefixed(out, &[]);
        }
    }
    let hours = write_tier(out, &series.hours, hot)?;
    let days = write_tier(out, &series.days, hot)?;
    let raw = series.recent.write(hot, out)?;
    match series.last_cumulative {
        None => out.push(0),
        Some((start, value)) => {
            out.push(1);
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&series.total.to_le_bytes());
    out.extend_from_slice(&series.last_ns.to_le_bytes());
    Some((hours, days, raw))
}

/// Reads a version 2 tier: taken as it is, cold when `placed` says where
/// its block lies in the file.
fn read_tier_v2(
    reader: &mut Reader<'_>,
    placed: Option<&Placed<'_>>,
    hot: &mut HotArena,
) -> Option<Tier> {
    let len = u32::try_from(reader.varint()?).ok()?;
    let last_start = match reader.varint()? {
        0 => None,
        start => Some(u32::try_from(start - 1).ok()?),
    };
    Some(Tier::from_snapshot(
        hot,
        reader.prefixed()?,
        len,
        last_start,
        placed,
    ))
}

/// Reads one version 2 series; its name and set are table entries.
fn read_series_v2(
    reader: &mut Reader<'_>,
    strings: &[Arc<str>],
    sets: &[Labels],
    placed: Option<&Placed<'_>>,
    hot: &mut HotArena,
) -> Option<Series> {
    let metric = strings.get(usize::try_from(reader.varint()?).ok()?)?;
    let labels = sets.get(usize::try_from(reader.varint()?).ok()?)?;
    read_series_data(
        reader,
        Arc::clone(metric),
        Arc::clone(labels),
        read_tier_v2,
        placed,
        hot,
    )
}

/// A series after its name and labels: the same in both versions but
/// for how tiers are read.
fn read_series_data(
    reader: &mut Reader<'_>,
    metric: Arc<str>,
    labels: Labels,
    read_tier: TierReader,
    placed: Option<&Placed<'_>>,
    hot: &mut HotArena,
) -> Option<Series> {
    let kind = SeriesKind::from_code(reader.bytes(1)?[0])?;
    // Read through the arena like any tier; the caller's compaction drops
    // these bytes.
    let open = read_tier(reader, None, hot)?
        .iter(hot)
        .next()
        .map(|record| (record.start, record.aggregate));
    let hours = read_tier(reader, placed, hot)?;
    let days = read_tier(reader, placed, hot)?;
    let recent = RawWindow::read(reader, placed, hot)?;
    let last_cumulative = match reader.bytes(1)?[0] {
        0 => None,
        _ => Some((reader.u64()?, reader.f64()?)),
    };
    Some(Series {
        metric,
        labels,
        kind,
        open,
        hours,
        days,
        recent,
        last_cumulative,
        last_histogram: None,
        total: reader.f64()?,
        last_ns: reader.u64()?,
    })
}

/// How a version reads a tier.
type TierReader = fn(&mut Reader<'_>, Option<&Placed<'_>>, &mut HotArena) -> Option<Tier>;

/// Reads one block's series, their hot history in an arena of the block's
/// own (blocks are read in parallel).
fn read_block(
    block: &[u8],
    strings: &[Arc<str>],
    sets: &[Labels],
    placed: Option<&Placed<'_>>,
) -> Option<(Vec<Series>, HotArena)> {
    let mut reader = Reader::new(block);
    let count = usize::try_from(reader.varint()?).ok()?;
    let mut series = Vec::with_capacity(count.min(BLOCK_SERIES));
    let mut hot = HotArena::default();
    for _ in 0..count {
        series.push(read_series_v2(
            &mut reader,
            strings,
            sets,
            placed,
            &mut hot,
        )?);
    }
    reader.done().then_some((series, hot))
}

/// Decodes a version 2 body: tables, then the series blocks on all
/// cores, then the rest as in version 1. With `cold` (the file and the
/// body's offset in it) sealed history stays in the file.
fn decode_body_v2(
    body: &[u8],
    limits: StoreLimits,
    cold: Option<(&Arc<ColdFile>, u64)>,
) -> Option<Store> {
    let mut reader = Reader::new(body);
    let store = Store::new(limits);
    let strings = {
        let count = usize::try_from(reader.varint()?).ok()?;
        let mut strings = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            strings.push(Arc::<str>::from(
                std::str::from_utf8(reader.prefixed()?).ok()?,
            ));
        }
        strings
    };
    let sets = {
        let count = usize::try_from(reader.varint()?).ok()?;
        let mut sets = Vec::with_capacity(count.min(1 << 20));
        let mut interner = super::labels::lock(&store.interner);
        for _ in 0..count {
            let pairs = usize::try_from(reader.varint()?).ok()?;
            let mut shared = Vec::with_capacity(pairs.min(256));
            for _ in 0..pairs {
                let key = strings.get(usize::try_from(reader.varint()?).ok()?)?;
                let value = strings.get(usize::try_from(reader.varint()?).ok()?)?;
                shared.push((Arc::clone(key), Arc::clone(value)));
            }
            sets.push(interner.labels(&Arc::new(LabelSet::from_shared(shared))));
        }
        sets
    };
    let blocks = {
        let count = usize::try_from(reader.varint()?).ok()?;
        let mut blocks = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            blocks.push(reader.prefixed()?);
        }
        blocks
    };
    let decoded = crate::parallel::map_on_cores(&blocks, 1, |block| {
        let placed = cold.map(|(file, body_offset)| Placed {
            file,
            block,
            offset: body_offset + (block.as_ptr() as usize - body.as_ptr() as usize) as u64,
        });
        read_block(block, &strings, &sets, placed.as_ref())
    });
    let mut store = store;
    for block in decoded {
        let (block, block_hot) = block?;
        for mut series in block {
            series.compact_hot(&block_hot, &mut store.hot);
            let by_labels = store.metrics.entry(Arc::clone(&series.metric)).or_default();
            if by_labels
                .insert(Arc::clone(&series.labels), Box::new(series))
                .is_none()
            {
                store.series_total += 1;
            }
        }
    }
    {
        let mut interner = super::labels::lock(&store.interner);
        for name in store.metrics.keys() {
            interner.name(name);
        }
    }
    decode_rest(&mut reader, &mut store)?;
    reader.done().then_some(store)
}

fn text(reader: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(reader.prefixed()?.to_vec()).ok()
}

fn read_tier(reader: &mut Reader<'_>, _: Option<&Placed<'_>>, hot: &mut HotArena) -> Option<Tier> {
    let len = u32::try_from(reader.varint()?).ok()?;
    Tier::from_raw(hot, reader.prefixed()?, len)
}

fn read_series_v1(reader: &mut Reader<'_>, store: &mut Store) -> Option<Series> {
    let metric: Arc<str> = Arc::from(text(reader)?);
    let pairs = usize::try_from(reader.varint()?).ok()?;
    let mut labels = Vec::with_capacity(pairs.min(256));
    for _ in 0..pairs {
        labels.push((text(reader)?, text(reader)?));
    }
    let labels = Arc::new(LabelSet::new(labels));
    let (metric, labels) = {
        let mut interner = super::labels::lock(&store.interner);
        (interner.name(&metric), interner.labels(&labels))
    };
    read_series_data(reader, metric, labels, read_tier, None, &mut store.hot)
}

/// Decodes a version 1 body (labels spelled out per series); its history
/// is held in memory until the next snapshot.
fn decode_body_v1(
    body: &[u8],
    limits: StoreLimits,
    _: Option<(&Arc<ColdFile>, u64)>,
) -> Option<Store> {
    let mut reader = Reader::new(body);
    let mut store = Store::new(limits);
    let series = reader.varint()?;
    for _ in 0..series {
        let series = read_series_v1(&mut reader, &mut store)?;
        let by_labels = store.metrics.entry(Arc::clone(&series.metric)).or_default();
        if by_labels
            .insert(Arc::clone(&series.labels), Box::new(series))
            .is_none()
        {
            store.series_total += 1;
        }
    }
    decode_rest(&mut reader, &mut store)?;
    // Drops the open hours read through the arena.
    store.compact_hot();
    reader.done().then_some(store)
}

/// Agents, log records and counters: the end of every version's body.
fn decode_rest(reader: &mut Reader<'_>, store: &mut Store) -> Option<()> {
    for _ in 0..reader.varint()? {
        let agent = AgentSeen {
            service: text(reader)?,
            node: text(reader)?,
            version: text(reader)?,
            last_push_ns: reader.varint()?,
            last_point_ns: reader.varint()?,
            batches: reader.varint()?,
            simulated: reader.bytes(1)?[0] == 1,
        };
        store
            .agents
            .insert((agent.service.clone(), agent.node.clone()), agent);
    }
    for _ in 0..reader.varint()? {
        let time_ns = reader.varint()?;
        let severity = text(reader)?;
        let body = text(reader)?;
        let pairs = reader.varint()?;
        let mut attributes = Vec::new();
        for _ in 0..pairs {
            attributes.push((text(reader)?, text(reader)?));
        }
        store.keep_log(LogRecord {
            time_ns,
            severity,
            body,
            attributes,
        });
    }
    store.stats = StoreStats {
        samples: reader.varint()?,
        resets: reader.varint()?,
        log_records: reader.varint()?,
        series_limited: reader.varint()?,
    };
    Some(())
}

/// Reads the snapshot in `dir`; `Ok(None)` when there is none. The file
/// stays open: the store reads its sealed history from it.
pub fn read(dir: &Path, limits: StoreLimits) -> Result<Option<Loaded>, SnapshotError> {
    let path = dir.join(FILE_NAME);
    let mut bytes = Vec::new();
    let file = match File::open(&path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)
                .map_err(|source| SnapshotError::Io {
                    path: path.clone(),
                    source,
                })?;
            ColdFile::new(file, &path)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    let corrupt = |reason| SnapshotError::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut header = Reader::new(&bytes);
    let magic = header
        .bytes(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let version = header
        .bytes(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if magic != Some(MAGIC) {
        return Err(corrupt("not a Tally snapshot"));
    }
    let decode_body = match version {
        Some(1) => decode_body_v1,
        Some(VERSION) => decode_body_v2,
        _ => return Err(corrupt("written by another snapshot version")),
    };
    let wal_seq = header.u64().ok_or_else(|| corrupt("truncated header"))?;
    let len = header.u64().ok_or_else(|| corrupt("truncated header"))?;
    let crc = header.u32().ok_or_else(|| corrupt("truncated header"))?;
    let body = usize::try_from(len)
        .ok()
        .and_then(|len| header.bytes(len))
        .ok_or_else(|| corrupt("truncated body"))?;
    if crc32fast::hash(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let store = decode_body(body, limits, Some((&file, HEADER as u64)))
        .ok_or_else(|| corrupt("malformed body"))?;
    Ok(Some(Loaded { store, wal_seq }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{T0, limits, sample};
    use super::*;
    use crate::ingest::points::SampleValue;
    use tally_schema::exphist::ExpHistogram;

    const HOUR: u64 = 3_600_000_000_000;

    /// Three series of four hours (gauge, cumulative counter,
    /// distribution), an agent and a log record.
    fn filled_store() -> Store {
        let mut store = Store::new(limits());
        for i in 0..(60 * 4u64) {
            let t = T0 + i * 900_000_000_000;
            store.apply(sample("mem", "a", t, SampleValue::Gauge(i as f64)));
            store.apply(sample(
                "cpu",
                "b",
                t,
                SampleValue::Cumulative {
                    value: i as f64 * 2.0,
                    start_ns: 1,
                },
            ));
            let mut sketch = ExpHistogram::default();
            sketch.record(0.5 + (i % 7) as f64);
            store.apply(sample(
                "lat",
                "c",
                t,
                SampleValue::Distribution(Box::new(sketch)),
            ));
        }
        store.saw_agent(AgentSeen {
            service: "tally-agent".into(),
            node: "n1".into(),
            ..AgentSeen::default()
        });
        store.push_log(LogRecord {
            time_ns: 5,
            severity: "INFO".into(),
            body: "hello".into(),
            attributes: vec![("k".into(), "v".into())],
        });
        store
    }

    /// Every answer the tests ask of `filled_store` is the same on `restored`.
    fn assert_same_answers(store: &Store, restored: &Store) {
        assert_close_answers(store, restored, 0.0);
    }

    /// As [`assert_same_answers`], with quantiles within `tolerance`
    /// (relative): history rolled up by another release merged its
    /// sketches in other groups.
    fn assert_close_answers(store: &Store, restored: &Store, tolerance: f64) {
        assert_eq!(restored.series_count(), 3);
        assert_eq!(restored.stats(), store.stats());
        assert_eq!(restored.agents().count(), 1);
        assert_eq!(restored.logs(10).count(), 1);
        let end = T0 + 61 * HOUR;
        for (metric, stat) in [
            ("mem", super::super::Stat::Max),
            ("mem", super::super::Stat::Quantile(0.5)),
            ("cpu", super::super::Stat::Increase),
            ("lat", super::super::Stat::Quantile(0.95)),
        ] {
            let before = store.select(metric, &[]).next().expect("series");
            let after = restored.select(metric, &[]).next().expect("series");
            let (got, want) = (
                restored.stat(after, stat, T0, end).expect("answer"),
                store.stat(before, stat, T0, end).expect("answer"),
            );
            match stat {
                super::super::Stat::Quantile(_) => assert!(
                    (got - want).abs() <= want.abs() * tolerance,
                    "{metric} {stat:?}: {got} vs {want}"
                ),
                _ => assert_eq!(got, want, "{metric} {stat:?}"),
            }
            assert_eq!(restored.recent_points(after), store.recent_points(before));
            assert_eq!(after.latest_rate(), before.latest_rate());
        }
    }

    #[test]
    fn a_snapshot_restores_every_answer_and_damage_is_refused() {
        let store = filled_store();
        let dir = tempfile::tempdir().expect("dir");
        let mut store = store;
        write(&mut store, dir.path(), 42)
            .expect("write")
            .commit()
            .expect("commit");
        let loaded = read(dir.path(), limits()).expect("read").expect("present");
        assert_eq!(loaded.wal_seq, 42);
        let mut restored = loaded.store;
        assert_same_answers(&store, &restored);
        // Each series keeps its own labels through the tables.
        let labels_of =
            |metric| Arc::clone(&restored.select(metric, &[]).next().expect("series").labels);
        assert_eq!(labels_of("mem").get("k8s.pod.name"), Some("a"));
        assert_eq!(labels_of("lat").get("k8s.pod.name"), Some("c"));
        // A cumulative counter keeps converting after the restore.
        restored.apply(sample(
            "cpu",
            "b",
            T0 + 61 * HOUR,
            SampleValue::Cumulative {
                value: 1000.0,
                start_ns: 1,
            },
        ));
        assert_eq!(restored.stats().resets, 0);

        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("bytes");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("flip");
        assert!(matches!(
            read(dir.path(), limits()),
            Err(SnapshotError::Corrupt {
                reason: "checksum mismatch",
                ..
            })
        ));
        std::fs::write(&path, &bytes[..10]).expect("cut");
        assert!(matches!(
            read(dir.path(), limits()),
            Err(SnapshotError::Corrupt { .. })
        ));
        std::fs::remove_file(&path).expect("rm");
        assert!(read(dir.path(), limits()).expect("none").is_none());
    }

    /// A version 1 file (labels spelled out per series), written by the
    /// previous release from `filled_store`'s data, still loads: upgrading
    /// must not lose the history a snapshot holds.
    #[test]
    fn version_1_snapshots_still_load() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join(FILE_NAME),
            include_bytes!("testdata/snapshot-v1.bin"),
        )
        .expect("write");
        let loaded = read(dir.path(), limits()).expect("read").expect("present");
        assert_eq!(loaded.wal_seq, 42);
        // That release rolled hours into days an hour at a time.
        assert_close_answers(&filled_store(), &loaded.store, 0.05);
    }

    /// Applies minutes `from..to` (1-minute steps) of a gauge, a
    /// cumulative counter and a distribution for pods a and b.
    fn apply_minutes(store: &mut Store, from: u64, to: u64) {
        for minute in from..to {
            let t = T0 + minute * 60_000_000_000;
            for pod in ["a", "b"] {
                let wave = (minute % 97) as f64;
                store.apply(sample("mem", pod, t, SampleValue::Gauge(1e6 + wave * 3.5)));
                store.apply(sample(
                    "cpu",
                    pod,
                    t,
                    SampleValue::Cumulative {
                        value: minute as f64 * 1.5,
                        start_ns: 1,
                    },
                ));
                let mut sketch = ExpHistogram::default();
                sketch.record(0.1 + wave / 10.0);
                store.apply(sample(
                    "lat",
                    pod,
                    t,
                    SampleValue::Distribution(Box::new(sketch)),
                ));
            }
        }
    }

    /// Every question the API asks has the same answer on both stores.
    fn assert_same_history(store: &Store, reference: &Store, end_minute: u64) {
        assert_eq!(store.series_count(), reference.series_count());
        let end = T0 + end_minute * 60_000_000_000;
        for expected in reference.all_series() {
            let got = store
                .select(expected.metric(), &[])
                .find(|s| s.labels == expected.labels)
                .expect("series");
            let what = format!("{} {:?}", expected.metric(), expected.label("k8s.pod.name"));
            for (from_hours, to_hours) in [(0, 1), (3, 30), (0, 100), (40, 200), (0, 24 * 15)] {
                let (from, to) = (T0 + from_hours * HOUR, (T0 + to_hours * HOUR).min(end));
                for stat in [
                    super::super::Stat::Max,
                    super::super::Stat::Min,
                    super::super::Stat::Avg,
                    super::super::Stat::Increase,
                    super::super::Stat::Quantile(0.95),
                ] {
                    assert_eq!(
                        store.stat(got, stat, from, to),
                        reference.stat(expected, stat, from, to),
                        "{what} {stat:?} hours {from_hours}..{to_hours}"
                    );
                }
            }
            assert_eq!(
                store.daily_peaks(got),
                reference.daily_peaks(expected),
                "{what}"
            );
            assert_eq!(
                store.recent_points(got),
                reference.recent_points(expected),
                "{what}"
            );
            assert_eq!(got.latest_rate(), expected.latest_rate(), "{what}");
            assert_eq!(got.aggregate_count(), expected.aggregate_count(), "{what}");
        }
    }

    /// Snapshot (its history goes cold) and commit.
    fn snapshot_and_adopt(store: &mut Store, dir: &Path) {
        write(store, dir, 1)
            .expect("write")
            .commit()
            .expect("commit");
    }

    /// The store's answers do not change when sealed history moves to the
    /// snapshot file: not after the move, not as new hours roll cold
    /// hours into days, raw chunks leave the window from the file and late
    /// data rewrites a cold tier, not through later snapshots (which copy
    /// the cold history into the next file) nor a restart from them.
    #[test]
    fn cold_history_answers_like_history_in_memory() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::new(limits());
        let mut reference = Store::new(limits());
        // Three days: 48 hourly records, a day rolled up, 360 raw points.
        apply_minutes(&mut store, 0, 3 * 24 * 60);
        apply_minutes(&mut reference, 0, 3 * 24 * 60);
        let in_memory = store.estimated_bytes();
        snapshot_and_adopt(&mut store, dir.path());
        let cold = store.estimated_bytes();
        assert!(
            cold * 3 < in_memory,
            "history left the heap: {in_memory} -> {cold} bytes"
        );
        for series in store.all_series() {
            // A tier of a few dozen bytes stays: a span would cost as much.
            assert!(series.hours.is_cold(), "{series:?}");
            assert!(series.days.hot_len() < 48, "{series:?}");
            // Distributions keep no raw window.
            assert_eq!(
                series.recent.is_cold(),
                series.kind != SeriesKind::Distribution,
                "{series:?}"
            );
        }
        assert_same_history(&store, &reference, 3 * 24 * 60);

        // An hour that starts no new day leaves the days where they are.
        apply_minutes(&mut store, 3 * 24 * 60, 3 * 24 * 60 + 61);
        apply_minutes(&mut reference, 3 * 24 * 60, 3 * 24 * 60 + 61);
        let lat = store.select("lat", &[]).next().expect("series");
        assert!(lat.days.is_cold() && lat.hours.is_cold(), "{lat:?}");

        // Thirty more hours: cold hours roll into days, cold raw chunks
        // drop out of the window; then a late point for a cold hour.
        apply_minutes(&mut store, 3 * 24 * 60 + 61, 3 * 24 * 60 + 30 * 60);
        apply_minutes(&mut reference, 3 * 24 * 60 + 61, 3 * 24 * 60 + 30 * 60);
        for s in [&mut store, &mut reference] {
            s.apply(sample(
                "mem",
                "a",
                T0 + 60 * HOUR + 7,
                SampleValue::Gauge(9e9),
            ));
        }
        let end = 3 * 24 * 60 + 30 * 60;
        assert_same_history(&store, &reference, end);

        // A second snapshot reads the cold history of the first.
        let errors = super::super::cold::read_errors();
        snapshot_and_adopt(&mut store, dir.path());
        assert_eq!(super::super::cold::read_errors(), errors);
        assert_same_history(&store, &reference, end);
        apply_minutes(&mut store, end, end + 90);
        apply_minutes(&mut reference, end, end + 90);
        assert_same_history(&store, &reference, end + 90);

        // A snapshot whose commit never happened (the process went on, the
        // rename failed): its file stays readable, and the next snapshot
        // does not truncate it under the series reading from it.
        let pending = write(&mut store, dir.path(), 2).expect("write");
        drop(pending);
        apply_minutes(&mut store, end + 90, end + 200);
        apply_minutes(&mut reference, end + 90, end + 200);
        assert_same_history(&store, &reference, end + 200);
        let pending = write(&mut store, dir.path(), 3).expect("write");
        assert_same_history(&store, &reference, end + 200);
        pending.commit().expect("commit");

        // And a restart from the newest file.
        snapshot_and_adopt(&mut store, dir.path());
        let restored = read(dir.path(), limits()).expect("read").expect("present");
        assert_same_history(&restored.store, &reference, end + 200);
    }

    /// A snapshot file that loses its bytes under a running store (a disk
    /// fault) costs answers, never the process: reads fail with a count and
    /// a log line, and the next snapshot refuses to write a store it could
    /// not read, so the write-ahead log keeps everything.
    /// What a snapshot made cold leaves the hot arena: the store keeps
    /// only what stayed in memory, in a fresh arena without garbage.
    #[test]
    fn a_snapshot_empties_the_hot_arena() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::new(limits());
        apply_minutes(&mut store, 0, 2 * 24 * 60);
        let before = store.hot().carved_bytes();
        assert!(store.hot().garbage_bytes() > 0, "{:?}", store.hot());
        snapshot_and_adopt(&mut store, dir.path());
        let after = store.hot().carved_bytes();
        assert!(after * 20 < before, "{before} bytes before, {after} after");
        assert_eq!(store.hot().garbage_bytes(), 0);
    }

    #[test]
    fn an_unreadable_cold_file_is_counted_and_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::new(limits());
        apply_minutes(&mut store, 0, 2 * 24 * 60);
        snapshot_and_adopt(&mut store, dir.path());
        let path = dir.path().join(FILE_NAME);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(HEADER as u64))
            .expect("cut the file");
        let errors = super::super::cold::read_errors();
        let mem = store.select("mem", &[]).next().expect("series");
        let whole = (T0, T0 + 48 * HOUR);
        // Only the open hour (in memory) is left to answer from.
        assert_eq!(
            store.stat(mem, super::super::Stat::Max, whole.0, whole.1),
            store.stat(mem, super::super::Stat::Max, T0 + 47 * HOUR, whole.1),
        );
        assert!(
            store.recent_points(mem).len() <= 120,
            "only the open chunk is left"
        );
        assert!(super::super::cold::read_errors() > errors);
        assert!(matches!(
            write(&mut store, dir.path(), 3),
            Err(SnapshotError::ColdRead)
        ));
        // New data still lands.
        apply_minutes(&mut store, 2 * 24 * 60, 2 * 24 * 60 + 5);
        assert_eq!(store.select("mem", &[]).count(), 2);
    }
}
