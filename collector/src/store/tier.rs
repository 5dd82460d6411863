//! Mergeable aggregates and their compact, sealed form.
//!
//! The hour being written is an [`Aggregate`] with a live sketch. Once a
//! newer hour starts it is sealed into a [`Tier`]: a byte buffer of
//! varint-encoded records, roughly 30–60 bytes an hour instead of a
//! struct, a tree node and a 160-slot bucket vector.

use tally_schema::exphist::{ExpHistogram, Parts};

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

    /// Adds one value.
    pub fn observe(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count += 1;
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
        self.count += distribution.count();
        self.sketch
            .get_or_insert_with(stored_sketch)
            .merge(distribution);
    }

    /// Adds another aggregate.
    pub fn merge(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tier {
    bytes: Vec<u8>,
    last_start: Option<u32>,
    len: u32,
}

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

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// The packed bytes and record count (for snapshots).
    pub fn raw(&self) -> (&[u8], u32, Option<u32>) {
        (&self.bytes, self.len, self.last_start)
    }

    /// Rebuilds a tier from snapshot bytes, checking that they decode.
    pub fn from_raw(bytes: Vec<u8>, len: u32) -> Option<Tier> {
        let tier = Tier {
            bytes,
            last_start: None,
            len,
        };
        let mut count = 0;
        let mut last = None;
        let mut reader = Reader::new(&tier.bytes);
        let mut start = 0u32;
        while !reader.done() {
            let record = reader.record(&mut start)?;
            last = Some(record.start);
            count += 1;
        }
        (count == len).then_some(Tier {
            last_start: last,
            ..tier
        })
    }

    /// Appends a record newer than every record held; an older or equal
    /// start (late data) is merged into place instead.
    pub fn push(&mut self, start: u32, aggregate: &Aggregate) {
        match self.last_start {
            Some(last) if start <= last => self.amend(start, aggregate),
            _ => {
                let delta = start - self.last_start.unwrap_or(0);
                encode(&mut self.bytes, delta, aggregate);
                self.last_start = Some(start);
                self.len += 1;
            }
        }
        self.bytes.shrink_to_fit();
    }

    /// Merges `aggregate` into the record at `start` (rare: late data), by
    /// rewriting the tier.
    fn amend(&mut self, start: u32, aggregate: &Aggregate) {
        let mut records: Vec<Sealed> = self.iter().collect();
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
        self.rebuild(records);
    }

    fn rebuild(&mut self, records: Vec<Sealed>) {
        *self = Tier::default();
        for record in records {
            let delta = record.start - self.last_start.unwrap_or(0);
            encode(&mut self.bytes, delta, &record.aggregate);
            self.last_start = Some(record.start);
            self.len += 1;
        }
    }

    /// Removes and returns the records that start before `start`.
    pub fn split_off_before(&mut self, start: u32) -> Vec<Sealed> {
        let mut records: Vec<Sealed> = self.iter().collect();
        let keep = records.partition_point(|r| r.start < start);
        if keep == 0 {
            return Vec::new();
        }
        let kept = records.split_off(keep);
        self.rebuild(kept);
        records
    }

    /// Records in time order.
    pub fn iter(&self) -> impl Iterator<Item = Sealed> + '_ {
        let mut reader = Reader::new(&self.bytes);
        let mut start = 0u32;
        std::iter::from_fn(move || {
            if reader.done() {
                None
            } else {
                reader.record(&mut start)
            }
        })
    }

    /// Folds the records whose start lies in `[from, to]` without decoding
    /// their sketches unless `sketch` is given, into which they are merged.
    pub fn fold_range(
        &self,
        from: u32,
        to: u32,
        mut sketch: Option<&mut ExpHistogram>,
        mut visit: impl FnMut(&Summary),
    ) {
        let mut reader = Reader::new(&self.bytes);
        let mut start = 0u32;
        let mut counts = Vec::new();
        while !reader.done() {
            let Some(summary) = reader.summary(&mut start) else {
                return;
            };
            if summary.start > to {
                return;
            }
            let wanted = summary.start >= from;
            let Some(parts) = reader.sketch_parts(&mut counts) else {
                return;
            };
            if !wanted {
                continue;
            }
            visit(&summary);
            if let (Some(target), Some(parts)) = (sketch.as_deref_mut(), parts) {
                merge_record(target, parts, &counts, &summary);
            }
        }
    }
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
            let counts = sketch.bucket_counts();
            put_varint(out, 1 + counts.len() as u64);
            put_varint(out, zigzag(sketch.scale()));
            put_varint(out, zigzag(sketch.offset()));
            put_varint(out, sketch.zero_count());
            for count in counts {
                put_varint(out, *count);
            }
        }
    }
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

    /// Reads a sketch's parts into `counts`; `Some(None)` when the record
    /// has no sketch.
    fn sketch_parts(&mut self, counts: &mut Vec<u64>) -> Option<Option<Parts<'static>>> {
        let tag = self.varint()?;
        if tag == 0 {
            return Some(None);
        }
        let buckets = usize::try_from(tag - 1).ok()?;
        let scale = unzigzag(self.varint()?);
        let offset = unzigzag(self.varint()?);
        let zero_count = self.varint()?;
        counts.clear();
        for _ in 0..buckets {
            counts.push(self.varint()?);
        }
        Some(Some(Parts {
            scale,
            offset,
            counts: &[],
            zero_count,
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
        tier.push(100, &aggregate(&[1.0, 2.0, 3.0], true));
        tier.push(101, &aggregate(&[5.0], false));
        tier.push(103, &aggregate(&[1e9, 2e9], true));
        assert_eq!(tier.len(), 3);
        let records: Vec<Sealed> = tier.iter().collect();
        assert_eq!(
            records.iter().map(|r| r.start).collect::<Vec<_>>(),
            [100, 101, 103]
        );
        assert_eq!(records[0].aggregate.max, 3.0);
        assert_eq!(records[1].aggregate.sketch, None);
        let sketch = records[2].aggregate.sketch.as_ref().expect("sketch");
        assert_eq!(sketch.count(), 2);
        // Late data: into an existing record, and between two.
        tier.push(100, &aggregate(&[10.0], true));
        tier.push(102, &aggregate(&[7.0], true));
        let records: Vec<Sealed> = tier.iter().collect();
        assert_eq!(
            records.iter().map(|r| r.start).collect::<Vec<_>>(),
            [100, 101, 102, 103]
        );
        assert_eq!(records[0].aggregate.count, 4);
        assert_eq!(records[0].aggregate.max, 10.0);
        let older = tier.split_off_before(102);
        assert_eq!(older.len(), 2);
        assert_eq!(tier.iter().next().map(|r| r.start), Some(102));
        let (bytes, len, _) = tier.raw();
        assert_eq!(
            Tier::from_raw(bytes.to_vec(), len).as_ref(),
            Some(&tier),
            "snapshot form"
        );
        assert_eq!(Tier::from_raw(bytes[..bytes.len() - 1].to_vec(), len), None);
    }

    #[test]
    fn a_steady_hour_costs_few_bytes_and_keeps_its_quantiles() {
        let mut tier = Tier::default();
        // An hour of 15 s memory samples drifting by 0.2 %.
        let values: Vec<f64> = (0..240).map(|i| 2.0e9 * (1.0 + i as f64 * 1e-5)).collect();
        tier.push(1, &aggregate(&values, true));
        assert!(tier.heap_bytes() <= 48, "{}", tier.heap_bytes());
        let mut merged = stored_sketch();
        let mut max = 0.0f64;
        tier.fold_range(0, 10, Some(&mut merged), |s| max = max.max(s.max));
        assert_eq!(max, values[239]);
        let p50 = merged.quantile(0.5).expect("p50");
        assert!((p50 - values[120]).abs() / values[120] < 0.006, "{p50}");
    }

    #[test]
    fn fold_range_selects_by_start() {
        let mut tier = Tier::default();
        for hour in 0..10u32 {
            tier.push(hour, &aggregate(&[f64::from(hour)], true));
        }
        let mut seen = Vec::new();
        tier.fold_range(3, 5, None, |s| seen.push(s.start));
        assert_eq!(seen, [3, 4, 5]);
    }
}
