//! The recent raw window of one series, compressed as in Facebook's
//! Gorilla paper: timestamps (milliseconds) as delta-of-deltas, values as
//! the XOR with the previous value. A regular 15 s series whose value does
//! not change costs 2 bits a point; a changing one typically 2–5 bytes,
//! against 16 bytes for a plain `(u64, f64)`.
//!
//! Points live in chunks of [`CHUNK_POINTS`]; the window drops whole
//! chunks from the front, so it holds between the configured window and
//! one chunk more.

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
    fn put(&mut self, value: u64, width: u32) {
        for i in (0..width).rev() {
            let byte = (self.bit_len / 8) as usize;
            if byte == self.bits.len() {
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
    chunks: std::collections::VecDeque<Chunk>,
    newest: Option<(u64, f64)>,
    previous: Option<(u64, f64)>,
    len: u32,
}

impl RawWindow {
    /// Appends a point (ns) and drops chunks older than `oldest_ns` or
    /// beyond `max_points`. A point older than the newest is ignored (the
    /// window is for sparklines; hourly aggregates still count it).
    pub fn push(&mut self, time_ns: u64, value: f64, oldest_ns: u64, max_points: usize) {
        if self.newest.is_some_and(|(t, _)| time_ns < t) {
            return;
        }
        let need_chunk = self.chunks.back().is_none_or(|c| c.points >= CHUNK_POINTS);
        if need_chunk {
            if let Some(full) = self.chunks.back_mut() {
                full.bits.shrink_to_fit();
            }
            self.chunks.push_back(Chunk::default());
        }
        if let Some(chunk) = self.chunks.back_mut() {
            chunk.push(time_ns / 1_000_000, sparkline_precision(value));
        }
        self.previous = self.newest;
        self.newest = Some((time_ns, value));
        self.len += 1;
        let oldest_ms = oldest_ns / 1_000_000;
        while self.chunks.len() > 1 {
            let front = &self.chunks[0];
            let too_many = self.len as usize - usize::from(front.points) >= max_points;
            if front.last_ms < oldest_ms || too_many {
                self.len -= u32::from(front.points);
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// Points in time order, `(ns, value)`.
    pub fn points(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.chunks.iter().flat_map(Chunk::points)
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

    /// Appends the window's snapshot form.
    pub fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.chunks.len() as u64);
        for chunk in &self.chunks {
            chunk.write(out);
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
    }

    /// Reads a window written by [`Self::write`].
    pub fn read(reader: &mut Reader<'_>) -> Option<RawWindow> {
        let chunks = usize::try_from(reader.varint()?).ok()?;
        let mut window = RawWindow::default();
        for _ in 0..chunks {
            let chunk = Chunk::read(reader)?;
            window.len += u32::from(chunk.points);
            window.chunks.push_back(chunk);
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

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.chunks.iter().map(|c| c.bits.capacity()).sum::<usize>()
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
            window.push(t, v, 0, 10_000);
            expected.push((t / 1_000_000 * 1_000_000, v));
        }
        let points: Vec<_> = window.points().collect();
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
        let t0 = 1_800_000_000_000_000_000u64;
        let step = 15_000_000_000u64;
        for i in 0..1440u64 {
            window.push(t0 + i * step, 7.0, 0, 1440);
        }
        assert_eq!(window.len(), 1440);
        assert!(window.heap_bytes() < 2_000, "{}", window.heap_bytes());
        // Six hours of window at 15 s: older chunks go.
        for i in 1440..2880u64 {
            let t = t0 + i * step;
            window.push(t, 7.0, t - 6 * 3_600_000_000_000, 1440);
        }
        assert!(window.len() <= 1440 + usize::from(CHUNK_POINTS));
        assert!(window.len() >= 1440);
        let first = window.points().next().expect("a point");
        assert!(
            first.0 >= t0 + 1440 * step - 6 * 3_600_000_000_000 - u64::from(CHUNK_POINTS) * step
        );
        let mut snapshot = Vec::new();
        window.write(&mut snapshot);
        let restored = RawWindow::read(&mut Reader::new(&snapshot)).expect("restored");
        assert_eq!(restored, window);
        assert_eq!(
            RawWindow::read(&mut Reader::new(&snapshot[..snapshot.len() - 3])),
            None
        );
        // Out-of-order points are not added.
        let before = window.len();
        window.push(t0, 1.0, 0, 10_000);
        assert_eq!(window.len(), before);
    }
}
