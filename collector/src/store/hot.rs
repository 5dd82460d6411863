//! History sealed since the last snapshot (full raw chunks, sealed hours
//! and days), bump-allocated in large segments mapped from the system
//! instead of one heap allocation per series.
//!
//! Why: a backfill seals a lot between two snapshots, and the snapshot
//! then makes it all cold at once. Freed one series at a time, those
//! pieces left holes between the long-lived ones (open hours, open
//! chunks) that the allocator could neither reuse nor give back: the
//! collector kept its high-water mark. Here the snapshot drops whole
//! segments, which are unmapped (docs/benchmarks.md, "Memory per series").

use memmap2::MmapMut;

/// Size of a segment; a larger piece gets a segment of its own.
const SEGMENT_BYTES: usize = 2 << 20;

/// Smallest capacity handed out: a tier grows by a record at a time.
const MIN_CAPACITY: u32 = 32;

/// Where one series' hot bytes lie in the arena. Empty is the default; an
/// extent is only meaningful with the arena that made it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    segment: u32,
    offset: u32,
    len: u32,
    capacity: u32,
}

impl Extent {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A mapped segment, or a heap one where mapping failed.
enum Segment {
    Mapped(MmapMut),
    Heap(Vec<u8>),
}

impl Segment {
    fn new(len: usize) -> Segment {
        match MmapMut::map_anon(len) {
            Ok(map) => Segment::Mapped(map),
            // Without a mapping the arena still works; its memory just
            // goes back to the allocator, not the system.
            Err(_) => Segment::Heap(vec![0; len]),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Segment::Mapped(map) => map,
            Segment::Heap(bytes) => bytes,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Segment::Mapped(map) => map,
            Segment::Heap(bytes) => bytes,
        }
    }
}

/// The arena. Bytes are appended in place while an extent has room and
/// moved to a larger one when it has not; moved and released bytes stay
/// as garbage until [`HotArena::compact_into`] or the arena is dropped.
#[derive(Default)]
pub struct HotArena {
    segments: Vec<Segment>,
    /// Bytes handed out from the last segment.
    top: usize,
    /// Bytes handed out in all segments.
    carved: usize,
    /// Handed-out bytes no extent holds any more.
    garbage: usize,
}

impl std::fmt::Debug for HotArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotArena")
            .field("segments", &self.segments.len())
            .field("carved", &self.carved)
            .field("garbage", &self.garbage)
            .finish()
    }
}

impl HotArena {
    /// The bytes of `extent`.
    pub fn bytes(&self, extent: &Extent) -> &[u8] {
        if extent.len == 0 {
            return &[];
        }
        let from = extent.offset as usize;
        self.segments
            .get(extent.segment as usize)
            .and_then(|segment| segment.bytes().get(from..from + extent.len as usize))
            .unwrap_or(&[])
    }

    /// Appends `data` to `extent`, moving it when it lacks room.
    pub fn append(&mut self, extent: &mut Extent, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let needed = extent.len as usize + data.len();
        if needed > extent.capacity as usize {
            let capacity = needed
                .max(extent.capacity as usize * 2)
                .max(MIN_CAPACITY as usize);
            let mut moved = self.carve(capacity);
            self.copy_within(extent, &mut moved);
            self.garbage += extent.capacity as usize;
            *extent = moved;
        }
        let at = (extent.offset + extent.len) as usize;
        if let Some(segment) = self.segments.get_mut(extent.segment as usize) {
            segment.bytes_mut()[at..at + data.len()].copy_from_slice(data);
            extent.len += data.len() as u32;
        }
    }

    /// Drops the first `count` bytes of `extent` (all of them at most).
    pub fn release_front(&mut self, extent: &mut Extent, count: usize) {
        let count = count.min(extent.len as usize) as u32;
        if count == extent.len {
            self.clear(extent);
            return;
        }
        extent.offset += count;
        extent.len -= count;
        extent.capacity -= count;
        self.garbage += count as usize;
    }

    /// Empties `extent`.
    pub fn clear(&mut self, extent: &mut Extent) {
        self.garbage += extent.capacity as usize;
        *extent = Extent::default();
    }

    /// Replaces `extent`'s bytes with `data`.
    pub fn replace(&mut self, extent: &mut Extent, data: &[u8]) {
        self.clear(extent);
        self.append(extent, data);
    }

    /// Copies `extent` into `target` (exactly sized) and points it there:
    /// the step by which the store moves what is still hot into a fresh
    /// arena after a snapshot, dropping this one.
    pub fn compact_into(&self, target: &mut HotArena, extent: &mut Extent) {
        let mut moved = Extent::default();
        target.append(&mut moved, self.bytes(extent));
        *extent = moved;
    }

    /// Bytes handed out that no extent holds.
    pub fn garbage_bytes(&self) -> usize {
        self.garbage
    }

    /// Bytes handed out.
    pub fn carved_bytes(&self) -> usize {
        self.carved
    }

    fn carve(&mut self, capacity: usize) -> Extent {
        let fits = self
            .segments
            .last()
            .is_some_and(|last| last.bytes().len() - self.top >= capacity);
        if !fits {
            self.segments
                .push(Segment::new(capacity.max(SEGMENT_BYTES)));
            self.top = 0;
        }
        let extent = Extent {
            segment: (self.segments.len() - 1) as u32,
            offset: self.top as u32,
            len: 0,
            capacity: capacity as u32,
        };
        self.top += capacity;
        self.carved += capacity;
        extent
    }

    /// Copies `from` into `to`, just carved: `to` lies in the last
    /// segment, `from` in it or an earlier one.
    fn copy_within(&mut self, from: &Extent, to: &mut Extent) {
        let (source, source_at) = (from.segment as usize, from.offset as usize);
        let (target, target_at) = (to.segment as usize, to.offset as usize);
        let len = from.len as usize;
        if len == 0 || source > target || target >= self.segments.len() {
            return;
        }
        let (earlier, rest) = self.segments.split_at_mut(target);
        let target_bytes = rest[0].bytes_mut();
        if source == target {
            target_bytes.copy_within(source_at..source_at + len, target_at);
        } else {
            target_bytes[target_at..target_at + len]
                .copy_from_slice(&earlier[source].bytes()[source_at..source_at + len]);
        }
        to.len = from.len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_grow_in_place_then_move_and_keep_every_byte() {
        let mut arena = HotArena::default();
        let mut a = Extent::default();
        let mut b = Extent::default();
        let mut expected_a = Vec::new();
        let mut expected_b = Vec::new();
        for i in 0..2000u32 {
            let piece: Vec<u8> = (0..(i % 37) as u8).map(|x| x ^ i as u8).collect();
            if i % 3 == 0 {
                arena.append(&mut a, &piece);
                expected_a.extend_from_slice(&piece);
            } else {
                arena.append(&mut b, &piece);
                expected_b.extend_from_slice(&piece);
            }
        }
        assert_eq!(arena.bytes(&a), expected_a);
        assert_eq!(arena.bytes(&b), expected_b);
        assert!(arena.garbage_bytes() > 0, "{arena:?}");
        arena.release_front(&mut a, 10);
        assert_eq!(arena.bytes(&a), &expected_a[10..]);
        arena.append(&mut a, b"tail");
        assert!(arena.bytes(&a).ends_with(b"tail"));
    }

    #[test]
    fn a_piece_larger_than_a_segment_gets_its_own() {
        let mut arena = HotArena::default();
        let mut small = Extent::default();
        arena.append(&mut small, b"before");
        let big = vec![7u8; SEGMENT_BYTES + 5];
        let mut large = Extent::default();
        arena.append(&mut large, &big);
        assert_eq!(arena.bytes(&large), big.as_slice());
        assert_eq!(arena.bytes(&small), b"before");
    }

    #[test]
    fn compacting_moves_what_is_held_and_drops_the_rest() {
        let mut arena = HotArena::default();
        let mut kept = Extent::default();
        let mut dropped = Extent::default();
        for _ in 0..100 {
            arena.append(&mut kept, b"kept ");
            arena.append(&mut dropped, &[0u8; 1000]);
        }
        arena.clear(&mut dropped);
        let mut fresh = HotArena::default();
        arena.compact_into(&mut fresh, &mut kept);
        drop(arena);
        assert_eq!(fresh.bytes(&kept), b"kept ".repeat(100).as_slice());
        assert_eq!(fresh.carved_bytes(), 500);
        assert_eq!(fresh.garbage_bytes(), 0);
        assert!(fresh.bytes(&dropped).is_empty());
    }
}
