//! The recent raw window of one series, compressed as in Facebook's
//! Gorilla paper: timestamps (milliseconds) as delta-of-deltas, values as
//! the XOR with the previous value. A regular 15 s series whose value does
//! not change costs 2 bits a point; a changing one typically 2–5 bytes,
//! against 16 bytes for a plain `(u64, f64)`.
//!
//! Points live in chunks of [`CHUNK_POINTS`]; the window drops whole
//! chunks from the front, so it holds between the configured window and
//! one chunk more.

use super::cold::{Placed, Span};
use super::hot::{Extent, HotArena};
use super::tier::{Reader, put_prefixed, put_varint};

/// Points per chunk.
pub const CHUNK_POINTS: u16 = 120;

/// A bit-packed chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    bits: Vec<u8>,
    bit_len: u32,
    points: u16,
    first_ms: u64,
    last_ms: u64,
    last_delta: i64,
    last_value: u64,
    leading: u8,
    trailing: u8,
}

impl Chunk {
    /// Empties the chunk, keeping its buffer.
    fn clear(&mut self) {
        let mut bits = std::mem::take(&mut self.bits);
        bits.clear();
        *self = Chunk {
            bits,
            ..Chunk::default()
        };
    }

    fn put(&mut self, value: u64, width: u32) {
        for i in (0..width).rev() {
            let byte = (self.bit_len / 8) as usize;
            if byte == self.bits.len() {
                if self.bits.len() == self.bits.capacity() {
                    // A quarter more at a time, not double: an open chunk
                    // lives long, and doubling leaves up to half unused.
                    self.bits.reserve_exact((self.bits.len() / 4).max(16));
                }
                self.bits.push(0);
            }
            if (value >> i) & 1 == 1 {
                self.bits[byte] |= 0x80 >> (self.bit_len % 8);
            }
            self.bit_len += 1;
        }
    }

    fn push(&mut self, time_ms: u64, value: f64) {
        let value = value.to_bits();
        if self.points == 0 {
            self.first_ms = time_ms;
            self.put(value, 64);
            self.leading = u8::MAX;
        } else {
            let delta = time_ms as i64 - self.last_ms as i64;
            let dod = delta - self.last_delta;
            match dod {
                0 => self.put(0, 1),
                -63..=64 => {
                    self.put(0b10, 2);
                    self.put((dod + 63) as u64, 7);
                }
                -255..=256 => {
                    self.put(0b110, 3);
                    self.put((dod + 255) as u64, 9);
                }
                -2047..=2048 => {
                    self.put(0b1110, 4);
                    self.put((dod + 2047) as u64, 12);
                }
                _ => {
                    self.put(0b1111, 4);
                    self.put(dod as u64, 64);
                }
            }
            self.last_delta = delta;
            let xor = value ^ self.last_value;
            if xor == 0 {
                self.put(0, 1);
            } else {
                let leading = (xor.leading_zeros() as u8).min(31);
                let trailing = xor.trailing_zeros() as u8;
                if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
                    self.put(0b10, 2);
                    let width = 64 - u32::from(self.leading) - u32::from(self.trailing);
                    self.put(xor >> self.trailing, width);
                } else {
                    let width = 64 - u32::from(leading) - u32::from(trailing);
                    self.put(0b11, 2);
                    self.put(u64::from(leading), 5);
                    // A width of 64 is stored as 0 in six bits.
                    self.put(u64::from(width) & 63, 6);
                    self.put(xor >> trailing, width);
                    self.leading = leading;
                    self.trailing = trailing;
                }
            }
        }
        self.last_ms = time_ms;
        self.last_value = value;
        self.points += 1;
    }

    /// Decodes the chunk's points.
    pub fn points(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        let mut reader = BitReader {
            bits: &self.bits,
            at: 0,
            len: self.bit_len,
        };
        let mut state = (0u64, 0i64, 0u64, 0u32, 0u32);
        let mut index = 0u16;
        std::iter::from_fn(move || {
            if index >= self.points {
                return None;
            }
            let (time, delta, value, leading, trailing) = &mut state;
            if index == 0 {
                *time = self.first_ms;
                *value = reader.get(64)?;
            } else {
                let dod = if reader.get(1)? == 0 {
                    0
                } else if reader.get(1)? == 0 {
                    reader.get(7)? as i64 - 63
                } else if reader.get(1)? == 0 {
                    reader.get(9)? as i64 - 255
                } else if reader.get(1)? == 0 {
                    reader.get(12)? as i64 - 2047
                } else {
                    reader.get(64)? as i64
                };
                *delta += dod;
                *time = (*time as i64 + *delta) as u64;
                if reader.get(1)? == 1 {
                    if reader.get(1)? == 1 {
                        *leading = reader.get(5)? as u32;
                        let width = match reader.get(6)? as u32 {
                            0 => 64,
                            w => w,
                        };
                        *trailing = 64 - *leading - width;
                    }
                    let width = 64 - *leading - *trailing;
                    *value ^= reader.get(width)? << *trailing;
                }
            }
            index += 1;
            Some((*time * 1_000_000, f64::from_bits(*value)))
        })
    }
}

struct BitReader<'a> {
    bits: &'a [u8],
    at: u32,
    len: u32,
}

impl BitReader<'_> {
    fn get(&mut self, width: u32) -> Option<u64> {
        if self.at + width > self.len {
            return None;
        }
        let mut value = 0u64;
        for _ in 0..width {
            let byte = self.bits[(self.at / 8) as usize];
            let bit = (byte >> (7 - self.at % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.at += 1;
        }
        Some(value)
    }
}

impl Chunk {
    fn write(&self, out: &mut Vec<u8>) {
        put_prefixed(out, &self.bits);
        put_varint(out, u64::from(self.bit_len));
        put_varint(out, u64::from(self.points));
        out.extend_from_slice(&self.first_ms.to_le_bytes());
        out.extend_from_slice(&self.last_ms.to_le_bytes());
        out.extend_from_slice(&self.last_delta.to_le_bytes());
        out.extend_from_slice(&self.last_value.to_le_bytes());
        out.push(self.leading);
        out.push(self.trailing);
    }

    fn read(reader: &mut Reader<'_>) -> Option<Chunk> {
        let bits = reader.prefixed()?.to_vec();
        let bit_len = u32::try_from(reader.varint()?).ok()?;
        let points = u16::try_from(reader.varint()?).ok()?;
        if bit_len as usize > bits.len() * 8 || points > CHUNK_POINTS {
            return None;
        }
        Some(Chunk {
            bits,
            bit_len,
            points,
            first_ms: reader.u64()?,
            last_ms: reader.u64()?,
            last_delta: reader.u64()? as i64,
            last_value: reader.u64()?,
            leading: reader.bytes(1)?[0],
            trailing: reader.bytes(1)?[0],
        })
    }
}

/// Mantissa bits dropped from history points (52 → 24, a float's
/// precision: 7 significant digits).
const DROPPED_MANTISSA_BITS: u32 = 29;

/// `value` rounded to 24 mantissa bits. History points only feed
/// sparklines; the XOR encoding then stores about half the bits of a noisy
/// value. The newest two points stay exact (`latest`, `latest_rate`), and
/// every aggregate is computed from exact values.
fn sparkline_precision(value: f64) -> f64 {
    let half = 1u64 << (DROPPED_MANTISSA_BITS - 1);
    let rounded = f64::from_bits((value.to_bits() + half) & !((half << 1) - 1));
    if rounded.is_finite() { rounded } else { value }
}

/// The raw window of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawWindow {
    /// Older full chunks, in a cold file.
    cold: Option<ColdChunks>,
    /// Full chunks sealed since the last snapshot, in the store's hot
    /// arena; empty after a snapshot.
    hot: HotChunks,
    /// The chunk being written; empty only while the window is.
    open: Chunk,
    newest: Option<(u64, f64)>,
    previous: Option<(u64, f64)>,
    len: u32,
}

/// Full chunks in a cold file, as [`Chunk::write`] wrote them back to back.
#[derive(Debug, Clone, PartialEq)]
struct ColdChunks {
    span: Span,
    chunks: u32,
    points: u32,
    /// The oldest chunk, described so it can be dropped without a read.
    front: Front,
}

/// Full chunks in the hot arena, as [`Chunk::write`] wrote them back to
/// back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct HotChunks {
    extent: Extent,
    chunks: u32,
    points: u32,
    front: Front,
}

/// The oldest chunk of a run: its size in bytes, its points and its
/// newest time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Front {
    len: u32,
    points: u16,
    last_ms: u64,
}

impl Front {
    fn of(chunk: &Chunk, len: u32) -> Front {
        Front {
            len,
            points: chunk.points,
            last_ms: chunk.last_ms,
        }
    }

    /// The first chunk of a run's bytes, if it decodes.
    fn first_of(bytes: &[u8]) -> Option<Front> {
        let (chunk, len) = read_chunks(bytes, 1)?.into_iter().next()?;
        Some(Front::of(&chunk, len))
    }
}

/// What a snapshot wrote of a window's full chunks, to make them cold
/// once the file is in place ([`RawWindow::adopt`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct WrittenChunks {
    /// Position of the full chunks in the snapshot block.
    pub at: usize,
    /// Their length in bytes.
    pub len: u32,
    chunks: u32,
    points: u32,
    front: Front,
    /// Bytes of hot chunks that were written.
    hot_len: u32,
}

/// Chunk runs smaller than this stay in memory.
const COLD_MIN_BYTES: usize = 48;

/// Reads the chunks of a run, with the byte length of each.
fn read_chunks(bytes: &[u8], count: u32) -> Option<Vec<(Chunk, u32)>> {
    let mut reader = Reader::new(bytes);
    let mut chunks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let from = reader.position();
        let chunk = Chunk::read(&mut reader)?;
        chunks.push((chunk, (reader.position() - from) as u32));
    }
    Some(chunks)
}

impl RawWindow {
    /// Appends a point (ns) and drops chunks older than `oldest_ns` or
    /// beyond `max_points`. A point older than the newest is ignored (the
    /// window is for sparklines; hourly aggregates still count it).
    pub fn push(
        &mut self,
        hot: &mut HotArena,
        time_ns: u64,
        value: f64,
        oldest_ns: u64,
        max_points: usize,
    ) {
        if self.newest.is_some_and(|(t, _)| time_ns < t) {
            return;
        }
        if self.open.points >= CHUNK_POINTS {
            // The full chunk goes to the hot arena in its snapshot form; the
            // open chunk keeps its buffer (it lives long: a new one per
            // chunk would scatter long-lived pieces across the heap).
            let mut encoded = Vec::with_capacity(self.open.bits.len() + 48);
            self.open.write(&mut encoded);
            if self.hot.chunks == 0 {
                self.hot.front = Front::of(&self.open, encoded.len() as u32);
            }
            self.hot.chunks += 1;
            self.hot.points += u32::from(self.open.points);
            hot.append(&mut self.hot.extent, &encoded);
            self.open.clear();
        }
        self.open
            .push(time_ns / 1_000_000, sparkline_precision(value));
        self.previous = self.newest;
        self.newest = Some((time_ns, value));
        self.len += 1;
        let oldest_ms = oldest_ns / 1_000_000;
        loop {
            let (points, last_ms) = match (&self.cold, self.hot.chunks) {
                (Some(cold), _) => (cold.front.points, cold.front.last_ms),
                (None, 1..) => (self.hot.front.points, self.hot.front.last_ms),
                // Only the open chunk is left.
                (None, 0) => break,
            };
            let too_many = self.len as usize - usize::from(points) >= max_points;
            if last_ms >= oldest_ms && !too_many {
                break;
            }
            self.drop_front(hot);
        }
    }

    fn drop_front(&mut self, hot: &mut HotArena) {
        let Some(cold) = &mut self.cold else {
            self.drop_hot_front(hot);
            return;
        };
        self.len -= u32::from(cold.front.points);
        if cold.chunks == 1 {
            self.cold = None;
            return;
        }
        let span = cold.span.after(cold.front.len);
        let mut bytes = Vec::new();
        let front = span
            .read_into(&mut bytes)
            .then(|| Front::first_of(&bytes))
            .flatten();
        match front {
            Some(front) => {
                cold.points -= u32::from(cold.front.points);
                cold.chunks -= 1;
                cold.span = span;
                cold.front = front;
            }
            // Unreadable (counted): the cold points are gone.
            None => {
                self.len -= cold.points - u32::from(cold.front.points);
                self.cold = None;
            }
        }
    }

    fn drop_hot_front(&mut self, hot: &mut HotArena) {
        if self.hot.chunks == 0 {
            return;
        }
        let front = self.hot.front;
        self.len -= u32::from(front.points);
        self.hot.points -= u32::from(front.points);
        self.hot.chunks -= 1;
        hot.release_front(&mut self.hot.extent, front.len as usize);
        if self.hot.chunks == 0 {
            self.hot = HotChunks::default();
            return;
        }
        match Front::first_of(hot.bytes(&self.hot.extent)) {
            Some(front) => self.hot.front = front,
            // The store wrote these bytes itself; if they do not decode, the
            // rest is dropped rather than misread.
            None => {
                self.len -= self.hot.points;
                hot.clear(&mut self.hot.extent);
                self.hot = HotChunks::default();
            }
        }
    }

    /// Bytes of full chunks in the hot arena.
    pub fn hot_len(&self) -> usize {
        self.hot.extent.len()
    }

    /// Moves the hot chunks into `fresh` (after a snapshot).
    pub fn compact_hot(&mut self, old: &HotArena, fresh: &mut HotArena) {
        old.compact_into(fresh, &mut self.hot.extent);
    }

    /// Points in time order, `(ns, value)` (none from cold chunks that
    /// cannot be read).
    pub fn points(&self, hot: &HotArena) -> Vec<(u64, f64)> {
        let mut points = Vec::with_capacity(self.len as usize);
        if let Some(cold) = &self.cold {
            let mut bytes = Vec::new();
            if cold.span.read_into(&mut bytes) {
                for (chunk, _) in read_chunks(&bytes, cold.chunks).unwrap_or_default() {
                    points.extend(chunk.points());
                }
            }
        }
        if self.hot.chunks > 0 {
            let chunks = read_chunks(hot.bytes(&self.hot.extent), self.hot.chunks);
            for (chunk, _) in chunks.unwrap_or_default() {
                points.extend(chunk.points());
            }
        }
        points.extend(self.open.points());
        points
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The newest point.
    pub fn newest(&self) -> Option<(u64, f64)> {
        self.newest
    }

    /// The point before the newest.
    pub fn previous(&self) -> Option<(u64, f64)> {
        self.previous
    }

    /// Bytes of chunks in a cold file.
    pub fn cold_len(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.span.len as usize)
    }

    /// True when some chunks are read from a cold file.
    pub fn is_cold(&self) -> bool {
        self.cold.is_some()
    }

    /// Appends the window's snapshot form, reading cold chunks; `None`
    /// when they cannot be read.
    pub fn write(&self, hot: &HotArena, out: &mut Vec<u8>) -> Option<WrittenChunks> {
        let cold_chunks = self.cold.as_ref().map_or(0, |c| c.chunks);
        let open = u32::from(self.open.points > 0);
        put_varint(out, u64::from(cold_chunks + self.hot.chunks + open));
        let at = out.len();
        let mut written = WrittenChunks {
            at,
            chunks: cold_chunks,
            ..WrittenChunks::default()
        };
        if let Some(cold) = &self.cold {
            if !cold.span.read_into(out) {
                return None;
            }
            written.points = cold.points;
            written.front = cold.front;
        }
        written.len = self.cold.as_ref().map_or(0, |c| c.span.len);
        if self.hot.chunks > 0 {
            out.extend_from_slice(hot.bytes(&self.hot.extent));
            if written.chunks == 0 {
                written.front = self.hot.front;
            }
            written.chunks += self.hot.chunks;
            written.points += self.hot.points;
            written.hot_len = self.hot.extent.len() as u32;
            written.len = (out.len() - at) as u32;
        }
        if open == 1 {
            self.open.write(out);
        }
        for point in [self.newest, self.previous] {
            match point {
                None => out.push(0),
                Some((t, v)) => {
                    out.push(1);
                    out.extend_from_slice(&t.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        Some(written)
    }

    /// Makes the full chunks a snapshot just wrote cold, now that `span`
    /// holds them (called before the window changes again).
    pub fn adopt(&mut self, hot: &mut HotArena, written: &WrittenChunks, span: Span) {
        if (written.len as usize) < COLD_MIN_BYTES
            || written.chunks == 0
            || self.hot.extent.len() != written.hot_len as usize
        {
            return;
        }
        hot.clear(&mut self.hot.extent);
        self.hot = HotChunks::default();
        self.cold = Some(ColdChunks {
            span,
            chunks: written.chunks,
            points: written.points,
            front: written.front,
        });
    }

    /// Reads a window written by [`Self::write`]: its full chunks cold
    /// when `placed` says where the block being read lies in its file.
    pub fn read(
        reader: &mut Reader<'_>,
        placed: Option<&Placed<'_>>,
        hot: &mut HotArena,
    ) -> Option<RawWindow> {
        let count = u32::try_from(reader.varint()?).ok()?;
        let from = reader.position();
        let mut chunks = Vec::with_capacity(count.min(1024) as usize);
        let mut full_end = from;
        for i in 0..count {
            let start = reader.position();
            let chunk = Chunk::read(reader)?;
            chunks.push((chunk, (reader.position() - start) as u32));
            if i + 1 < count {
                full_end = reader.position();
            }
        }
        let mut window = RawWindow {
            len: chunks.iter().map(|(c, _)| u32::from(c.points)).sum(),
            ..RawWindow::default()
        };
        let full = reader.slice(from, full_end)?;
        if let Some((open, _)) = chunks.pop() {
            window.open = open;
        }
        // The full chunks: cold when the block lies in a file and the run
        // is worth a span, else copied to the hot arena.
        if let Some((first, len)) = chunks.first() {
            let (count, points, front) = (
                chunks.len() as u32,
                chunks.iter().map(|(c, _)| u32::from(c.points)).sum(),
                Front::of(first, *len),
            );
            match placed {
                Some(placed) if full.len() >= COLD_MIN_BYTES => {
                    window.cold = Some(ColdChunks {
                        span: placed.span_of(full),
                        chunks: count,
                        points,
                        front,
                    });
                }
                _ => {
                    window.hot = HotChunks {
                        extent: Extent::default(),
                        chunks: count,
                        points,
                        front,
                    };
                    hot.append(&mut window.hot.extent, full);
                }
            }
        }
        let mut point = || -> Option<Option<(u64, f64)>> {
            Some(match reader.bytes(1)?[0] {
                0 => None,
                _ => Some((reader.u64()?, reader.f64()?)),
            })
        };
        window.newest = point()?;
        window.previous = point()?;
        Some(window)
    }

    /// Heap bytes held (cold chunks cost none, hot ones are the arena's).
    pub fn heap_bytes(&self) -> usize {
        self.open.bits.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// History points come back at float precision (relative error at
    /// most 2^-24); the newest two are exact.
    #[test]
    fn points_round_trip_through_compression_at_float_precision() {
        let mut window = RawWindow::default();
        let mut hot = HotArena::default();
        let t0 = 1_800_000_000_000_000_000u64;
        let mut expected = Vec::new();
        for i in 0..500u64 {
            // Jittered 15 s steps, a constant stretch, integers, fractions,
            // a gap, zero and a huge value.
            let jitter = (i * 7919 % 23) * 1_000_000;
            let gap = if i > 300 { 3_600_000_000_000 } else { 0 };
            let t = t0 + i * 15_000_000_000 + jitter + gap;
            let v = match i % 5 {
                0 => 1.5e9 + i as f64,
                1 => 0.25 * i as f64,
                2 => 0.0,
                3 => 1e300,
                _ => 42.0,
            };
            window.push(&mut hot, t, v, 0, 10_000);
            expected.push((t / 1_000_000 * 1_000_000, v));
        }
        let points = window.points(&hot);
        assert_eq!(points.len(), expected.len());
        for ((t, v), (want_t, want_v)) in points.iter().zip(&expected) {
            assert_eq!(t, want_t);
            assert!(
                (v - want_v).abs() <= want_v.abs() / f64::from(1u32 << 24),
                "{v} vs {want_v}"
            );
        }
        // 1.5e9 + i needs more than 24 bits: rounded in history only.
        assert_ne!(points[5].1, expected[5].1);
        assert_eq!(
            window.newest().map(|(t, v)| (t / 1_000_000 * 1_000_000, v)),
            expected.last().copied()
        );
        assert_eq!(
            window
                .previous()
                .map(|(t, v)| (t / 1_000_000 * 1_000_000, v)),
            Some(expected[498])
        );
    }

    #[test]
    fn steady_points_cost_bits_and_the_window_drops_old_chunks() {
        let mut window = RawWindow::default();
        let mut hot = HotArena::default();
        let t0 = 1_800_000_000_000_000_000u64;
        let step = 15_000_000_000u64;
        for i in 0..1440u64 {
            window.push(&mut hot, t0 + i * step, 7.0, 0, 1440);
        }
        assert_eq!(window.len(), 1440);
        let bytes = window.heap_bytes() + window.hot_len();
        assert!(bytes < 2_000, "{bytes}");
        // Six hours of window at 15 s: older chunks go.
        for i in 1440..2880u64 {
            let t = t0 + i * step;
            window.push(&mut hot, t, 7.0, t - 6 * 3_600_000_000_000, 1440);
        }
        assert!(window.len() <= 1440 + usize::from(CHUNK_POINTS));
        assert!(window.len() >= 1440);
        let first = window.points(&hot)[0];
        assert!(
            first.0 >= t0 + 1440 * step - 6 * 3_600_000_000_000 - u64::from(CHUNK_POINTS) * step
        );
        let mut snapshot = Vec::new();
        window.write(&hot, &mut snapshot).expect("in memory");
        let mut restored_hot = HotArena::default();
        let restored = RawWindow::read(&mut Reader::new(&snapshot), None, &mut restored_hot)
            .expect("restored");
        assert_eq!(restored.points(&restored_hot), window.points(&hot));
        assert_eq!(restored.newest(), window.newest());
        assert_eq!(restored.previous(), window.previous());
        assert_eq!(
            RawWindow::read(
                &mut Reader::new(&snapshot[..snapshot.len() - 3]),
                None,
                &mut restored_hot
            ),
            None
        );
        // Out-of-order points are not added.
        let before = window.len();
        window.push(&mut hot, t0, 1.0, 0, 10_000);
        assert_eq!(window.len(), before);
    }
}
