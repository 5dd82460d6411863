//! Mergeable aggregates and their compact, sealed form.
//!
//! The hour being written is an [`Aggregate`] with a live sketch. Once a
//! newer hour starts it is sealed into a [`Tier`]: a byte buffer of
//! varint-encoded records, roughly 30–60 bytes an hour instead of a
//! struct, a tree node and a 160-slot bucket vector.

use tally_schema::exphist::{ExpHistogram, Parts};

use super::cold::{Placed, Span};
use super::hot::{Extent, HotArena};

/// Finest scale stored: buckets 2^(1/128) wide, so a quantile is within
/// 0.55 % of the true value, and a steady series sits in one or two buckets.
pub const STORED_SCALE: i32 = 7;
/// Bucket budget of stored sketches (the OpenTelemetry SDK's default).
pub const STORED_BUCKETS: usize = 160;

/// One window of one series: extrema, sum, count and (for levels and
/// distributions) the distribution of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Smallest value seen.
    pub min: f64,
    /// Largest value seen.
    pub max: f64,
    /// Sum of values (for counters: the increase in the window).
    pub sum: f64,
    /// Number of values.
    pub count: u64,
    /// Distribution of values; `None` for counters, whose per-interval
    /// increments have no useful quantiles.
    pub sketch: Option<ExpHistogram>,
}

/// An empty sketch at the stored resolution.
pub fn stored_sketch() -> ExpHistogram {
    ExpHistogram::with_scale(STORED_BUCKETS, STORED_SCALE)
}

impl Aggregate {
    /// An empty aggregate, with a sketch when `with_sketch`.
    pub fn new(with_sketch: bool) -> Self {
        Self {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            count: 0,
            sketch: with_sketch.then(stored_sketch),
        }
    }

    /// Empties the aggregate for the next hour, keeping the sketch's
    /// allocation: the open hour lives long, and a fresh one every hour
    /// scatters long-lived pieces across the heap.
    pub fn reset(&mut self, with_sketch: bool) {
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
        self.sum = 0.0;
        self.count = 0;
        match (&mut self.sketch, with_sketch) {
            (Some(sketch), true) => sketch.clear(STORED_SCALE),
            (sketch, with_sketch) => *sketch = with_sketch.then(stored_sketch),
        }
    }

    /// Adds one value.
    pub fn observe(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count = self.count.saturating_add(1);
        if let Some(sketch) = &mut self.sketch {
            sketch.record(value);
        }
    }

    /// Adds a whole distribution.
    pub fn observe_distribution(&mut self, distribution: &ExpHistogram) {
        if distribution.is_empty() {
            return;
        }
        if let Some(min) = distribution.min() {
            self.min = self.min.min(min);
        }
        if let Some(max) = distribution.max() {
            self.max = self.max.max(max);
        }
        self.sum += distribution.sum();
        // Counts come from clients: saturate rather than overflow.
        self.count = self.count.saturating_add(distribution.count());
        self.sketch
            .get_or_insert_with(stored_sketch)
            .merge(distribution);
    }

    /// Adds another aggregate.
    pub fn merge(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count = self.count.saturating_add(other.count);
        if let Some(sketch) = &other.sketch {
            self.sketch.get_or_insert_with(stored_sketch).merge(sketch);
        }
    }
}

/// Sealed aggregates in time order, keyed by a start in hours since the
/// epoch, packed as
/// `[start delta][count][min f64][max f64][sum f64][sketch]` where the
/// sketch is `[0]` (none) or `[1 + buckets][scale][offset][zero count][counts…]`
/// and the integers are LEB128 varints (signed ones zig-zagged).
///
/// The older records may be cold (in the snapshot file, see
/// [`super::cold`]); the records in memory continue their delta chain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tier {
    cold: Option<ColdRecords>,
    /// Records sealed since the last snapshot, in the store's hot arena.
    hot: Extent,
    first_start: Option<u32>,
    last_start: Option<u32>,
    len: u32,
}

/// Records in a cold file.
#[derive(Debug, Clone, PartialEq)]
struct ColdRecords {
    span: Span,
    /// Start the first record's delta counts from (0 unless older records
    /// were split off since the file was written).
    base: u32,
}

/// What a snapshot wrote of a tier, to make those records cold once the
/// file is in place ([`Tier::adopt`]).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Position of the records' bytes in the snapshot block.
    pub at: usize,
    /// Their length.
    pub len: u32,
    /// In-memory bytes they included.
    pub hot_len: u32,
}

/// Tiers smaller than this stay in memory: a span costs about as much.
const COLD_MIN_BYTES: usize = 48;

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    /// Window start, hours since the epoch.
    pub start: u32,
    /// The aggregate.
    pub aggregate: Aggregate,
}

impl Tier {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the newest record.
    pub fn last_start(&self) -> Option<u32> {
        self.last_start
    }

    /// Start of the oldest record.
    pub fn first_start(&self) -> Option<u32> {
        self.first_start
    }

    /// Bytes of records in the hot arena.
    pub fn hot_len(&self) -> usize {
        self.hot.len()
    }

    /// Moves the hot records into `fresh` (after a snapshot).
    pub fn compact_hot(&mut self, old: &HotArena, fresh: &mut HotArena) {
        old.compact_into(fresh, &mut self.hot);
    }

    /// Bytes of records in a cold file.
    pub fn cold_len(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.span.len as usize)
    }

    /// True when some records are read from a cold file.
    pub fn is_cold(&self) -> bool {
        self.cold.is_some()
    }

    /// The packed records: in memory when none are cold, else read into
    /// `buffer`; with the start the first delta counts from. `None` (the
    /// error counted) when the cold part cannot be read.
    pub fn load<'b>(&self, hot: &'b HotArena, buffer: &'b mut Vec<u8>) -> Option<(&'b [u8], u32)> {
        let in_memory = hot.bytes(&self.hot);
        match &self.cold {
            None => Some((in_memory, 0)),
            Some(cold) => {
                buffer.clear();
                buffer.reserve(cold.span.len as usize + in_memory.len());
                if !cold.span.read_into(buffer) {
                    return None;
                }
                buffer.extend_from_slice(in_memory);
                Some((buffer, cold.base))
            }
        }
    }

    /// Writes the tier's records, length-prefixed, as one chain whose first
    /// delta counts from zero (the snapshot form), reading the cold part.
    /// Returns what was written, or `None` when the cold part cannot be
    /// read.
    pub fn write_prefixed(&self, hot: &HotArena, out: &mut Vec<u8>) -> Option<Written> {
        let at_len = |out: &Vec<u8>, len: usize| self.written(out.len() - len, len);
        let in_memory = hot.bytes(&self.hot);
        match &self.cold {
            None => {
                put_prefixed(out, in_memory);
                Some(at_len(out, in_memory.len()))
            }
            Some(cold) if cold.base == 0 => {
                let len = cold.span.len as usize + in_memory.len();
                put_varint(out, len as u64);
                if !cold.span.read_into(out) {
                    return None;
                }
                out.extend_from_slice(in_memory);
                Some(at_len(out, len))
            }
            Some(cold) => {
                let mut buffer = Vec::with_capacity(cold.span.len as usize + 5);
                if !cold.span.read_into(&mut buffer) {
                    return None;
                }
                let mut reader = Reader::new(&buffer);
                let first = reader.varint()?;
                let mut chain = Vec::with_capacity(buffer.len() + in_memory.len() + 5);
                put_varint(&mut chain, first + u64::from(cold.base));
                chain.extend_from_slice(&buffer[reader.at..]);
                chain.extend_from_slice(in_memory);
                put_prefixed(out, &chain);
                Some(at_len(out, chain.len()))
            }
        }
    }

    fn written(&self, at: usize, len: usize) -> Written {
        Written {
            at,
            len: len as u32,
            hot_len: self.hot.len() as u32,
        }
    }

    /// Makes the records a snapshot just wrote cold, now that `span` holds
    /// them (called before the tier changes again).
    pub fn adopt(&mut self, hot: &mut HotArena, written: &Written, span: Span) {
        if (written.len as usize) < COLD_MIN_BYTES || self.hot.len() < written.hot_len as usize {
            return;
        }
        hot.release_front(&mut self.hot, written.hot_len as usize);
        self.cold = Some(ColdRecords { span, base: 0 });
    }

    /// Rebuilds a tier from snapshot bytes without decoding them (the
    /// snapshot's checksum covers them, and `raw` gave the record count
    /// and last start).
    pub fn from_parts(hot: &mut HotArena, bytes: &[u8], len: u32, last_start: Option<u32>) -> Tier {
        let mut tier = Tier {
            first_start: first_delta(bytes),
            last_start,
            len,
            ..Tier::default()
        };
        hot.append(&mut tier.hot, bytes);
        tier
    }

    /// A tier whose records are `bytes` of a snapshot block read into
    /// memory: cold (read from the file again when needed) unless small.
    pub fn from_snapshot(
        hot: &mut HotArena,
        bytes: &[u8],
        len: u32,
        last_start: Option<u32>,
        placed: Option<&Placed<'_>>,
    ) -> Tier {
        match placed {
            Some(placed) if bytes.len() >= COLD_MIN_BYTES => Tier {
                cold: Some(ColdRecords {
                    span: placed.span_of(bytes),
                    base: 0,
                }),
                first_start: first_delta(bytes),
                last_start,
                len,
                ..Tier::default()
            },
            _ => Tier::from_parts(hot, bytes, len, last_start),
        }
    }

    /// Rebuilds a tier from snapshot bytes, checking that they decode.
    pub fn from_raw(hot: &mut HotArena, bytes: &[u8], len: u32) -> Option<Tier> {
        let mut count = 0;
        let mut last = None;
        let mut reader = Reader::new(bytes);
        let mut start = 0u32;
        while !reader.done() {
            let record = reader.record(&mut start)?;
            last = Some(record.start);
            count += 1;
        }
        (count == len).then(|| Tier::from_parts(hot, bytes, len, last))
    }

    /// Appends a record newer than every record held; an older or equal
    /// start (late data) is merged into place instead.
    pub fn push(&mut self, hot: &mut HotArena, start: u32, aggregate: &Aggregate) {
        match self.last_start {
            Some(last) if start <= last => self.amend(hot, start, aggregate),
            _ => {
                let delta = start - self.last_start.unwrap_or(0);
                hot.append(&mut self.hot, &encode_record(delta, aggregate));
                self.first_start.get_or_insert(start);
                self.last_start = Some(start);
                self.len += 1;
            }
        }
    }

    /// Merges `aggregate` into the record at `start` (rare: late data), by
    /// rewriting the tier into memory.
    fn amend(&mut self, hot: &mut HotArena, start: u32, aggregate: &Aggregate) {
        let mut records: Vec<Sealed> = self.iter(hot).collect();
        match records.binary_search_by_key(&start, |r| r.start) {
            Ok(i) => records[i].aggregate.merge(aggregate),
            Err(i) => records.insert(
                i,
                Sealed {
                    start,
                    aggregate: aggregate.clone(),
                },
            ),
        }
        self.rebuild(hot, records);
    }

    fn rebuild(&mut self, hot: &mut HotArena, records: Vec<Sealed>) {
        hot.clear(&mut self.hot);
        *self = Tier::default();
        let mut bytes = Vec::new();
        for record in records {
            let delta = record.start - self.last_start.unwrap_or(0);
            encode(&mut bytes, delta, &record.aggregate);
            self.first_start.get_or_insert(record.start);
            self.last_start = Some(record.start);
            self.len += 1;
        }
        hot.append(&mut self.hot, &bytes);
    }

    /// Removes and returns the records that start before `start`. Only
    /// those are decoded: a cold remainder stays in its file (its first
    /// delta now counts from the last removed start), and a remainder in
    /// memory is kept as it is but for its first delta, made absolute.
    pub fn split_off_before(&mut self, hot: &mut HotArena, start: u32) -> Vec<Sealed> {
        if self.first_start.is_none_or(|first| first >= start) {
            return Vec::new();
        }
        let cold_len = self.cold.as_ref().map_or(0, |c| c.span.len as usize);
        let mut buffer = Vec::new();
        let Some((bytes, base)) = self.load(hot, &mut buffer) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        let mut reader = Reader::new(bytes);
        let mut at = base;
        // (position of the first kept record, its start)
        let kept = loop {
            if reader.done() {
                break None;
            }
            let position = reader.at;
            let mut peek = Reader {
                bytes,
                at: position,
            };
            let next = peek
                .varint()
                .and_then(|d| u32::try_from(d).ok())
                .and_then(|d| at.checked_add(d));
            match next {
                Some(next) if next >= start => break Some((position, peek.at, next)),
                Some(_) => match reader.record(&mut at) {
                    Some(record) => removed.push(record),
                    None => break None,
                },
                None => break None,
            }
        };
        let removed_count = removed.len() as u32;
        match kept {
            Some((position, _, first)) if position < cold_len => {
                if let Some(cold) = &mut self.cold {
                    cold.span = cold.span.after(position as u32);
                    cold.base = at;
                }
                self.first_start = Some(first);
                self.len -= removed_count;
            }
            Some((_, after_delta, first)) => {
                let mut rest = Vec::with_capacity(bytes.len() - after_delta + 5);
                put_varint(&mut rest, u64::from(first));
                rest.extend_from_slice(&bytes[after_delta..]);
                self.cold = None;
                hot.replace(&mut self.hot, &rest);
                self.first_start = Some(first);
                self.len -= removed_count;
            }
            // Everything was older (or the tail did not decode): empty.
            None => {
                hot.clear(&mut self.hot);
                *self = Tier::default();
            }
        }
        removed
    }

    /// Records in time order (none past a cold part that cannot be read).
    pub fn iter(&self, hot: &HotArena) -> std::vec::IntoIter<Sealed> {
        let mut buffer = Vec::new();
        let mut records = Vec::with_capacity(self.len as usize);
        if let Some((bytes, base)) = self.load(hot, &mut buffer) {
            let mut reader = Reader::new(bytes);
            let mut start = base;
            while !reader.done() {
                match reader.record(&mut start) {
                    Some(record) => records.push(record),
                    None => break,
                }
            }
        }
        records.into_iter()
    }

    /// Visits the records whose start lies in `[from, to]`: their header
    /// and, undecoded, their sketch. Cold records are read into `buffer`,
    /// which the sketches borrow.
    pub fn fold_range<'a>(
        &self,
        hot: &'a HotArena,
        buffer: &'a mut Vec<u8>,
        from: u32,
        to: u32,
        mut visit: impl FnMut(&Summary, Option<SketchRef<'a>>),
    ) {
        if self.len == 0 || self.first_start.is_some_and(|first| first > to) {
            return;
        }
        let Some((bytes, base)) = self.load(hot, buffer) else {
            return;
        };
        let mut reader = Reader::new(bytes);
        let mut start = base;
        while !reader.done() {
            let Some(summary) = reader.summary(&mut start) else {
                return;
            };
            if summary.start > to {
                return;
            }
            let Some(sketch) = reader.sketch_ref() else {
                return;
            };
            if summary.start >= from {
                visit(&summary, sketch);
            }
        }
    }
}

/// One record, exactly sized. As the first of a chain its delta is its
/// start (the form a snapshot gives the open hour).
pub fn encode_record(delta: u32, aggregate: &Aggregate) -> Vec<u8> {
    let mut record = Vec::with_capacity(encoded_len(delta, aggregate));
    encode(&mut record, delta, aggregate);
    record
}

/// The first varint of `bytes` (a chain's first start), if any.
fn first_delta(bytes: &[u8]) -> Option<u32> {
    Reader::new(bytes)
        .varint()
        .and_then(|v| u32::try_from(v).ok())
}

/// Bucket counts, packed as varints (sealed) or plain (the open hour).
#[derive(Debug, Clone, Copy)]
pub enum Counts<'a> {
    /// LEB128 varints.
    Packed(&'a [u8]),
    /// Plain counts.
    Plain(&'a [u64]),
}

/// A sketch read in place.
#[derive(Debug, Clone, Copy)]
pub struct SketchRef<'a> {
    /// Scale.
    pub scale: i32,
    /// Index of the first bucket.
    pub offset: i32,
    /// Values in the zero bucket.
    pub zero_count: u64,
    /// Number of buckets.
    pub buckets: usize,
    /// The counts.
    pub counts: Counts<'a>,
}

impl<'a> SketchRef<'a> {
    /// A view of a live histogram.
    pub fn of(histogram: &'a ExpHistogram) -> Self {
        Self {
            scale: histogram.scale(),
            offset: histogram.offset(),
            zero_count: histogram.zero_count(),
            buckets: histogram.bucket_counts().len(),
            counts: Counts::Plain(histogram.bucket_counts()),
        }
    }

    /// The bucket counts in order.
    pub fn counts(&self) -> impl Iterator<Item = u64> + 'a {
        let (mut packed, plain) = match self.counts {
            Counts::Packed(bytes) => (Some(Reader::new(bytes)), [].iter()),
            Counts::Plain(counts) => (None, counts.iter()),
        };
        let mut plain = plain.copied();
        let mut left = self.buckets;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            match &mut packed {
                Some(reader) => reader.varint(),
                None => plain.next(),
            }
        })
    }
}

/// Merges many sketches for one quantile at once: the coarsest scale among
/// them is chosen first, then every count is added into one dense array.
/// Much cheaper than merging them one by one, which re-scales as it goes.
#[derive(Debug, Default)]
pub struct QuantileMerge<'a> {
    sketches: Vec<SketchRef<'a>>,
    count: u64,
    min: f64,
    max: f64,
}

/// Widest dense array a merge builds before coarsening further.
const DENSE_LIMIT: i64 = 4096;

impl<'a> QuantileMerge<'a> {
    /// An empty merge.
    pub fn new() -> Self {
        Self {
            sketches: Vec::new(),
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds a record.
    pub fn add(&mut self, summary: &Summary, sketch: SketchRef<'a>) {
        self.count += summary.count;
        self.min = self.min.min(summary.min);
        self.max = self.max.max(summary.max);
        self.sketches.push(sketch);
    }

    /// Quantile `q` (0..=1): the upper bound of the bucket holding it,
    /// clamped to the observed extremes (as [`ExpHistogram::quantile`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let zeros: u64 = self.sketches.iter().map(|s| s.zero_count).sum();
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        if rank <= zeros {
            return Some(0.0);
        }
        let dense = self.dense()?;
        let mut seen = zeros;
        for (position, count) in dense.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = tally_schema::exphist::bucket_upper_bound(
                    dense.low + position as i32,
                    dense.scale,
                );
                return Some(upper.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Every sketch's buckets on one dense array, at the finest common
    /// scale whose range fits [`DENSE_LIMIT`] buckets.
    pub fn dense(&self) -> Option<Dense> {
        if self.count == 0 {
            return None;
        }
        let zeros: u64 = self.sketches.iter().map(|s| s.zero_count).sum();
        let populated = || self.sketches.iter().filter(|s| s.buckets > 0);
        let Some(mut scale) = populated().map(|s| s.scale).min() else {
            // Only zeros.
            return Some(Dense {
                scale: 0,
                low: 0,
                counts: Vec::new(),
                zeros,
            });
        };
        let range = |scale: i32| {
            populated().fold((i64::MAX, i64::MIN), |(low, high), s| {
                let shift = s.scale - scale;
                let first = i64::from(s.offset >> shift);
                let last = i64::from((s.offset + s.buckets as i32 - 1) >> shift);
                (low.min(first), high.max(last))
            })
        };
        let (mut low, mut high) = range(scale);
        while high - low + 1 > DENSE_LIMIT {
            scale -= 1;
            (low, high) = range(scale);
        }
        let mut dense = vec![0u64; (high - low + 1) as usize];
        for sketch in populated() {
            let shift = sketch.scale - scale;
            let mut add = |position: i32, count: u64| {
                let index = i64::from((sketch.offset + position) >> shift) - low;
                if let Some(slot) = dense.get_mut(index as usize) {
                    *slot += count;
                }
            };
            match sketch.counts {
                // The hot loop of a long-window quantile: varints decoded
                // inline rather than through a reader.
                Counts::Packed(bytes) => {
                    let (mut position, mut value, mut bits) = (0i32, 0u64, 0u32);
                    for &byte in bytes {
                        value |= u64::from(byte & 0x7f) << bits;
                        if byte & 0x80 == 0 {
                            add(position, value);
                            position += 1;
                            (value, bits) = (0, 0);
                        } else {
                            bits = (bits + 7).min(63);
                        }
                    }
                }
                Counts::Plain(counts) => {
                    for (position, count) in counts.iter().enumerate() {
                        add(position as i32, *count);
                    }
                }
            }
        }
        Some(Dense {
            scale,
            low: low as i32,
            counts: dense,
            zeros,
        })
    }
}

/// Merged sketches on one dense array of buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Scale of the buckets.
    pub scale: i32,
    /// Index of the first bucket.
    pub low: i32,
    /// Counts from `low` up.
    pub counts: Vec<u64>,
    /// Values at zero.
    pub zeros: u64,
}

/// A record's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Start, hours since the epoch.
    pub start: u32,
    /// Values.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Sum.
    pub sum: f64,
}

/// Merges a record's sketch (its parts, bucket counts and header) into
/// `target`.
fn merge_record(target: &mut ExpHistogram, parts: Parts<'_>, counts: &[u64], summary: &Summary) {
    target.merge_parts(&Parts {
        counts,
        count: summary.count,
        sum: summary.sum,
        min: Some(summary.min),
        max: Some(summary.max),
        ..parts
    });
}

fn encode(out: &mut Vec<u8>, delta: u32, aggregate: &Aggregate) {
    put_varint(out, u64::from(delta));
    put_varint(out, aggregate.count);
    out.extend_from_slice(&aggregate.min.to_le_bytes());
    out.extend_from_slice(&aggregate.max.to_le_bytes());
    out.extend_from_slice(&aggregate.sum.to_le_bytes());
    match &aggregate.sketch {
        None => put_varint(out, 0),
        Some(sketch) => {
            // Length-prefixed, so a statistic that needs no sketch skips it.
            put_varint(out, 1 + sketch_len(sketch) as u64);
            put_varint(out, zigzag(sketch.scale()));
            put_varint(out, zigzag(sketch.offset()));
            put_varint(out, sketch.zero_count());
            put_varint(out, sketch.bucket_counts().len() as u64);
            for count in sketch.bucket_counts() {
                put_varint(out, *count);
            }
        }
    }
}

/// Bytes [`encode`] writes for a record.
fn encoded_len(delta: u32, aggregate: &Aggregate) -> usize {
    let sketch = aggregate.sketch.as_ref().map_or(1, |sketch| {
        let body = sketch_len(sketch);
        varint_len(1 + body as u64) + body
    });
    varint_len(u64::from(delta)) + varint_len(aggregate.count) + 24 + sketch
}

/// Bytes of a sketch's body in a record.
fn sketch_len(sketch: &ExpHistogram) -> usize {
    varint_len(zigzag(sketch.scale()))
        + varint_len(zigzag(sketch.offset()))
        + varint_len(sketch.zero_count())
        + varint_len(sketch.bucket_counts().len() as u64)
        + sketch
            .bucket_counts()
            .iter()
            .map(|c| varint_len(*c))
            .sum::<usize>()
}

/// Bytes of `value` as a LEB128 varint.
fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

fn unzigzag(value: u64) -> i32 {
    let value = value as u32;
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

/// Appends an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint-length-prefixed byte string.
pub fn put_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over packed bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the beginning.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.at
    }

    /// The bytes between two positions.
    pub fn slice(&self, from: usize, to: usize) -> Option<&'a [u8]> {
        self.bytes.get(from..to)
    }

    /// True at the end.
    pub fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// Reads an unsigned LEB128 varint.
    pub fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        let bytes = self.bytes(4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        let bytes = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Reads a varint-length-prefixed byte string.
    pub fn prefixed(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.bytes(len)
    }

    /// Reads a little-endian f64.
    pub fn f64(&mut self) -> Option<f64> {
        let bytes = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(f64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Reads `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let bytes = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(bytes)
    }

    fn summary(&mut self, start: &mut u32) -> Option<Summary> {
        *start = start.checked_add(u32::try_from(self.varint()?).ok()?)?;
        Some(Summary {
            start: *start,
            count: self.varint()?,
            min: self.f64()?,
            max: self.f64()?,
            sum: self.f64()?,
        })
    }

    /// Reads a record's sketch section without decoding its counts;
    /// `Some(None)` when the record has no sketch.
    fn sketch_ref(&mut self) -> Option<Option<SketchRef<'a>>> {
        let tag = self.varint()?;
        if tag == 0 {
            return Some(None);
        }
        let body = self.bytes(usize::try_from(tag - 1).ok()?)?;
        let mut inner = Reader::new(body);
        let scale = unzigzag(inner.varint()?);
        let offset = unzigzag(inner.varint()?);
        let zero_count = inner.varint()?;
        let buckets = usize::try_from(inner.varint()?).ok()?;
        Some(Some(SketchRef {
            scale,
            offset,
            zero_count,
            buckets,
            counts: Counts::Packed(&body[inner.at..]),
        }))
    }

    /// Reads a sketch's parts into `counts`; `Some(None)` when the record
    /// has none.
    fn sketch_parts(&mut self, counts: &mut Vec<u64>) -> Option<Option<Parts<'static>>> {
        let Some(sketch) = self.sketch_ref()? else {
            return Some(None);
        };
        counts.clear();
        counts.extend(sketch.counts());
        if counts.len() != sketch.buckets {
            return None;
        }
        Some(Some(Parts {
            scale: sketch.scale,
            offset: sketch.offset,
            counts: &[],
            zero_count: sketch.zero_count,
            count: 0,
            sum: 0.0,
            min: None,
            max: None,
        }))
    }

    fn record(&mut self, start: &mut u32) -> Option<Sealed> {
        let summary = self.summary(start)?;
        let mut counts = Vec::new();
        let sketch = self.sketch_parts(&mut counts)?.map(|parts| {
            let mut sketch = stored_sketch();
            merge_record(&mut sketch, parts, &counts, &summary);
            sketch
        });
        Some(Sealed {
            start: summary.start,
            aggregate: Aggregate {
                min: summary.min,
                max: summary.max,
                sum: summary.sum,
                count: summary.count,
                sketch,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregate(values: &[f64], sketch: bool) -> Aggregate {
        let mut a = Aggregate::new(sketch);
        for v in values {
            a.observe(*v);
        }
        a
    }

    #[test]
    fn records_round_trip_and_late_data_merges_in_place() {
        let mut tier = Tier::default();
        let mut hot = HotArena::default();
        tier.push(&mut hot, 100, &aggregate(&[1.0, 2.0, 3.0], true));
        tier.push(&mut hot, 101, &aggregate(&[5.0], false));
        tier.push(&mut hot, 103, &aggregate(&[1e9, 2e9], true));
        assert_eq!(tier.len(), 3);
        let records: Vec<Sealed> = tier.iter(&hot).collect();
        assert_eq!(
            records.iter().map(|r| r.start).collect::<Vec<_>>(),
            [100, 101, 103]
        );
        assert_eq!(records[0].aggregate.max, 3.0);
        assert_eq!(records[1].aggregate.sketch, None);
        let sketch = records[2].aggregate.sketch.as_ref().expect("sketch");
        assert_eq!(sketch.count(), 2);
        // Late data: into an existing record, and between two.
        tier.push(&mut hot, 100, &aggregate(&[10.0], true));
        tier.push(&mut hot, 102, &aggregate(&[7.0], true));
        let records: Vec<Sealed> = tier.iter(&hot).collect();
        assert_eq!(
            records.iter().map(|r| r.start).collect::<Vec<_>>(),
            [100, 101, 102, 103]
        );
        assert_eq!(records[0].aggregate.count, 4);
        assert_eq!(records[0].aggregate.max, 10.0);
        let older = tier.split_off_before(&mut hot, 102);
        assert_eq!(older.len(), 2);
        assert_eq!(tier.iter(&hot).next().map(|r| r.start), Some(102));
        let mut written = Vec::new();
        tier.write_prefixed(&hot, &mut written).expect("in memory");
        let bytes = Reader::new(&written).prefixed().expect("prefixed");
        let len = tier.len() as u32;
        assert_eq!(
            Tier::from_raw(&mut hot, bytes, len).map(|t| t.iter(&hot).collect::<Vec<_>>()),
            Some(tier.iter(&hot).collect::<Vec<_>>()),
            "snapshot form"
        );
        assert_eq!(
            Tier::from_raw(&mut hot, &bytes[..bytes.len() - 1], len),
            None
        );
    }

    #[test]
    fn a_steady_hour_costs_few_bytes_and_keeps_its_quantiles() {
        let mut tier = Tier::default();
        let mut hot = HotArena::default();
        // An hour of 15 s memory samples drifting by 0.2 %.
        let values: Vec<f64> = (0..240).map(|i| 2.0e9 * (1.0 + i as f64 * 1e-5)).collect();
        tier.push(&mut hot, 1, &aggregate(&values, true));
        assert!(tier.hot_len() <= 48, "{}", tier.hot_len());
        let mut merge = QuantileMerge::new();
        let mut max = 0.0f64;
        let mut buffer = Vec::new();
        tier.fold_range(&hot, &mut buffer, 0, 10, |s, sketch| {
            max = max.max(s.max);
            merge.add(s, sketch.expect("sketch"));
        });
        assert_eq!(max, values[239]);
        let p50 = merge.quantile(0.5).expect("p50");
        assert!((p50 - values[120]).abs() / values[120] < 0.006, "{p50}");
    }

    #[test]
    fn the_dense_merge_agrees_with_merging_one_by_one() {
        let mut tier = Tier::default();
        let mut hot = HotArena::default();
        let mut whole = stored_sketch();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for hour in 0..60u32 {
            let mut a = Aggregate::new(true);
            for _ in 0..200 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // Wide and shifting ranges force different scales per hour.
                let v = (rng % 10_000) as f64 / 100.0 * f64::from(1 + hour % 7);
                let v = if rng.is_multiple_of(13) { 0.0 } else { v };
                a.observe(v);
                whole.record(v);
            }
            tier.push(&mut hot, hour, &a);
        }
        let mut merge = QuantileMerge::new();
        let mut buffer = Vec::new();
        tier.fold_range(&hot, &mut buffer, 0, 100, |s, sketch| {
            merge.add(s, sketch.expect("sketch"))
        });
        let mut one_by_one = stored_sketch();
        for record in tier.iter(&hot) {
            one_by_one.merge(record.aggregate.sketch.as_ref().expect("sketch"));
        }
        for q in [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let dense = merge.quantile(q).expect("dense");
            let merged = one_by_one.quantile(q).expect("merged");
            assert_eq!(dense, merged, "q={q}");
            // And both are close to recording everything in one sketch.
            let exact = whole.quantile(q).expect("whole");
            assert!(
                (dense - exact).abs() <= 0.1 * exact.max(1.0),
                "q={q} {dense} {exact}"
            );
        }
        assert_eq!(QuantileMerge::new().quantile(0.5), None);
    }

    /// Found by the fuzzer: a late hostile distribution with a count near
    /// `u64::MAX` merged into its sealed hour overflowed the count.
    #[test]
    fn huge_counts_saturate_when_merged() {
        let mut huge = ExpHistogram::default();
        huge.record_n(1.0, u64::MAX - 1);
        let mut first = Aggregate::new(true);
        first.observe_distribution(&huge);
        let mut tier = Tier::default();
        let mut hot = HotArena::default();
        tier.push(&mut hot, 1, &first);
        tier.push(&mut hot, 1, &first);
        let record = tier.iter(&hot).next().expect("record");
        assert_eq!(record.aggregate.count, u64::MAX);
        let mut again = record.aggregate.clone();
        again.observe(2.0);
        again.observe_distribution(&huge);
        assert_eq!(again.count, u64::MAX);
    }

    #[test]
    fn encoded_len_is_what_encode_writes() {
        for values in [&[][..], &[0.0], &[1.0, 1e12, 3.5], &[1e-9, 7.0, 7.0, 1e300]] {
            for sketch in [false, true] {
                let aggregate = aggregate(values, sketch);
                for delta in [0, 1, 127, 128, 300_000] {
                    let mut out = Vec::new();
                    encode(&mut out, delta, &aggregate);
                    assert_eq!(out.len(), encoded_len(delta, &aggregate));
                }
            }
        }
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
        }
    }

    #[test]
    fn fold_range_selects_by_start() {
        let mut tier = Tier::default();
        let mut hot = HotArena::default();
        for hour in 0..10u32 {
            tier.push(&mut hot, hour, &aggregate(&[f64::from(hour)], true));
        }
        let mut seen = Vec::new();
        tier.fold_range(&hot, &mut Vec::new(), 3, 5, |s, _| seen.push(s.start));
        assert_eq!(seen, [3, 4, 5]);
    }
}
