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
//! A snapshot is written to a temporary file, fsynced and renamed over the
//! previous one; only then are the log segments it covers deleted.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;

use super::labels::{LabelSet, Labels};
use super::raw::RawWindow;
use super::tier::{Reader, Tier, put_prefixed, put_varint};
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

/// Encodes `store` as a snapshot covering the log before `wal_seq`.
pub fn encode(store: &Store, wal_seq: u64) -> Encoded {
    let series: Vec<&Series> = store.all_series().collect();
    let mut strings = StringTable::default();
    // Sets by address: series of one container share one interned set.
    let mut sets: HashMap<*const LabelSet, u32> = HashMap::new();
    let mut set_list: Vec<Vec<(u32, u32)>> = Vec::new();
    let refs: Vec<(u32, u32)> = series
        .iter()
        .map(|s| {
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
            (name, set)
        })
        .collect();
    let blocks: Vec<std::ops::Range<usize>> = (0..series.len())
        .step_by(BLOCK_SERIES)
        .map(|start| start..(start + BLOCK_SERIES).min(series.len()))
        .collect();
    let blocks = crate::parallel::map_on_cores(&blocks, 1, |range| {
        // Sized up front: growing a block by doubling would copy it.
        let size = series[range.clone()]
            .iter()
            .map(|s| s.heap_bytes() + 128)
            .sum::<usize>();
        let mut block = Vec::with_capacity(size + 16);
        put_varint(&mut block, range.len() as u64);
        for i in range.clone() {
            write_series(&mut block, series[i], refs[i]);
        }
        block
    });
    let mut body = Vec::with_capacity(1 << 20);
    put_varint(&mut body, strings.list.len() as u64);
    for text in &strings.list {
        put_prefixed(&mut body, text.as_bytes());
    }
    put_varint(&mut body, set_list.len() as u64);
    for pairs in &set_list {
        put_varint(&mut body, pairs.len() as u64);
        for (k, v) in pairs {
            put_varint(&mut body, u64::from(*k));
            put_varint(&mut body, u64::from(*v));
        }
    }
    put_varint(&mut body, blocks.len() as u64);
    // The body is these parts in order; blocks are not copied into one
    // buffer (at 1,000 nodes that was a gigabyte copied twice under the
    // store's lock).
    let mut parts = vec![body];
    for block in blocks {
        let mut prefix = Vec::with_capacity(10);
        put_varint(&mut prefix, block.len() as u64);
        parts.push(prefix);
        parts.push(block);
    }
    let mut body = Vec::new();
    put_varint(&mut body, store.agents.len() as u64);
    for agent in store.agents.values() {
        put_prefixed(&mut body, agent.service.as_bytes());
        put_prefixed(&mut body, agent.node.as_bytes());
        put_prefixed(&mut body, agent.version.as_bytes());
        put_varint(&mut body, agent.last_push_ns);
        put_varint(&mut body, agent.last_point_ns);
        put_varint(&mut body, agent.batches);
        body.push(u8::from(agent.simulated));
    }
    put_varint(&mut body, store.logs.len() as u64);
    for record in &store.logs {
        put_varint(&mut body, record.time_ns);
        put_prefixed(&mut body, record.severity.as_bytes());
        put_prefixed(&mut body, record.body.as_bytes());
        put_varint(&mut body, record.attributes.len() as u64);
        for (k, v) in &record.attributes {
            put_prefixed(&mut body, k.as_bytes());
            put_prefixed(&mut body, v.as_bytes());
        }
    }
    for counter in [
        store.stats.samples,
        store.stats.resets,
        store.stats.log_records,
        store.stats.series_limited,
    ] {
        put_varint(&mut body, counter);
    }
    parts.push(body);
    let mut crc = crc32fast::Hasher::new();
    for part in &parts {
        crc.update(part);
    }
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&wal_seq.to_le_bytes());
    header.extend_from_slice(&(parts.iter().map(Vec::len).sum::<usize>() as u64).to_le_bytes());
    header.extend_from_slice(&crc.finalize().to_le_bytes());
    parts.insert(0, header);
    Encoded { parts }
}

/// An encoded snapshot: the file is these parts in order.
#[derive(Debug)]
pub struct Encoded {
    parts: Vec<Vec<u8>>,
}

impl Encoded {
    /// The file's size in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// True for an empty file (never: there is always a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts, in file order.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.parts.iter().map(Vec::as_slice)
    }
}

fn write_tier(out: &mut Vec<u8>, tier: &Tier) {
    let (bytes, len, last_start) = tier.raw();
    put_varint(out, u64::from(len));
    put_varint(out, last_start.map_or(0, |start| u64::from(start) + 1));
    put_prefixed(out, bytes);
}

fn write_series(out: &mut Vec<u8>, series: &Series, (name, set): (u32, u32)) {
    put_varint(out, u64::from(name));
    put_varint(out, u64::from(set));
    out.push(series.kind.code());
    // The open hour as a one-record tier.
    let mut open = Tier::default();
    if let Some((hour, aggregate)) = &series.open {
        open.push(*hour, aggregate);
    }
    write_tier(out, &open);
    write_tier(out, &series.hours);
    write_tier(out, &series.days);
    series.recent.write(out);
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
}

/// Reads a version 2 tier: taken as it is.
fn read_tier_v2(reader: &mut Reader<'_>) -> Option<Tier> {
    let len = u32::try_from(reader.varint()?).ok()?;
    let last_start = match reader.varint()? {
        0 => None,
        start => Some(u32::try_from(start - 1).ok()?),
    };
    Some(Tier::from_parts(
        reader.prefixed()?.to_vec(),
        len,
        last_start,
    ))
}

/// Reads one version 2 series; its name and set are table entries.
fn read_series_v2(
    reader: &mut Reader<'_>,
    strings: &[Arc<str>],
    sets: &[Labels],
) -> Option<Series> {
    let metric = strings.get(usize::try_from(reader.varint()?).ok()?)?;
    let labels = sets.get(usize::try_from(reader.varint()?).ok()?)?;
    read_series_data(reader, Arc::clone(metric), Arc::clone(labels), read_tier_v2)
}

/// A series after its name and labels: the same in both versions but
/// for how tiers are read.
fn read_series_data(
    reader: &mut Reader<'_>,
    metric: Arc<str>,
    labels: Labels,
    read_tier: fn(&mut Reader<'_>) -> Option<Tier>,
) -> Option<Series> {
    let kind = SeriesKind::from_code(reader.bytes(1)?[0])?;
    let open = read_tier(reader)?
        .iter()
        .next()
        .map(|record| (record.start, record.aggregate));
    let hours = read_tier(reader)?;
    let days = read_tier(reader)?;
    let recent = RawWindow::read(reader)?;
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
        total: reader.f64()?,
        last_ns: reader.u64()?,
    })
}

fn read_block(block: &[u8], strings: &[Arc<str>], sets: &[Labels]) -> Option<Vec<Series>> {
    let mut reader = Reader::new(block);
    let count = usize::try_from(reader.varint()?).ok()?;
    let mut series = Vec::with_capacity(count.min(BLOCK_SERIES));
    for _ in 0..count {
        series.push(read_series_v2(&mut reader, strings, sets)?);
    }
    reader.done().then_some(series)
}

/// Decodes a version 2 body: tables, then the series blocks on all
/// cores, then the rest as in version 1.
fn decode_body_v2(body: &[u8], limits: StoreLimits) -> Option<Store> {
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
    let decoded =
        crate::parallel::map_on_cores(&blocks, 1, |block| read_block(block, &strings, &sets));
    let mut store = store;
    for block in decoded {
        for series in block? {
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

fn read_tier(reader: &mut Reader<'_>) -> Option<Tier> {
    let len = u32::try_from(reader.varint()?).ok()?;
    Tier::from_raw(reader.prefixed()?.to_vec(), len)
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
    read_series_data(reader, metric, labels, read_tier)
}

/// Decodes a version 1 body (labels spelled out per series).
fn decode_body_v1(body: &[u8], limits: StoreLimits) -> Option<Store> {
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
        store.logs.push_back(LogRecord {
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

/// Writes `bytes` as the snapshot in `dir`: temporary file, fsync, rename,
/// directory fsync.
pub fn write(dir: &Path, snapshot: &Encoded) -> Result<(), SnapshotError> {
    let path = dir.join(FILE_NAME);
    let temporary = dir.join(format!("{FILE_NAME}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    let mut file = File::create(&temporary).map_err(io(&temporary))?;
    for part in snapshot.parts() {
        file.write_all(part).map_err(io(&temporary))?;
    }
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Reads the snapshot in `dir`; `Ok(None)` when there is none.
pub fn read(dir: &Path, limits: StoreLimits) -> Result<Option<Loaded>, SnapshotError> {
    let path = dir.join(FILE_NAME);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut file) => file
            .read_to_end(&mut bytes)
            .map_err(|source| SnapshotError::Io {
                path: path.clone(),
                source,
            })?,
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
    let store = decode_body(body, limits).ok_or_else(|| corrupt("malformed body"))?;
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
            assert_eq!(
                Store::stat(after, stat, T0, end),
                Store::stat(before, stat, T0, end),
                "{metric} {stat:?}"
            );
            assert_eq!(
                after.recent_points().collect::<Vec<_>>(),
                before.recent_points().collect::<Vec<_>>()
            );
            assert_eq!(after.latest_rate(), before.latest_rate());
        }
    }

    #[test]
    fn a_snapshot_restores_every_answer_and_damage_is_refused() {
        let store = filled_store();
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), &encode(&store, 42)).expect("write");
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
        assert_same_answers(&filled_store(), &loaded.store);
    }
}
