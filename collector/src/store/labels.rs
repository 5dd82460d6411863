//! Label sets: sorted, hashed once, shared.
//!
//! A container's ~30 series all carry the same resource attributes. The
//! set is built once per resource per request, hashed once, and interned by
//! the store, so every series of a container points at one copy instead of
//! holding its own strings.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A shared label set.
pub type Labels = Arc<LabelSet>;

/// Sorted, de-duplicated `(key, value)` pairs with their hash. Strings
/// are shared, so a point's set built from its resource's set copies
/// pointers, not text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    pairs: Box<[(Arc<str>, Arc<str>)]>,
    hash: u64,
}

impl Hash for LabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for LabelSet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LabelSet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.pairs.cmp(&other.pairs)
    }
}

impl LabelSet {
    /// Builds a set; for a repeated key the first occurrence wins (callers
    /// put the attributes that take precedence first).
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self::from_shared(
            pairs
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }

    /// `own` pairs over `base`'s: an own pair wins over a base pair of the
    /// same key. The base's strings are shared, not copied.
    pub fn over(own: Vec<(String, String)>, base: &LabelSet) -> Self {
        let mut pairs: Vec<(Arc<str>, Arc<str>)> = own
            .into_iter()
            .map(|(k, v)| (Arc::from(k), Arc::from(v)))
            .collect();
        pairs.extend(base.pairs.iter().cloned());
        Self::from_shared(pairs)
    }

    fn from_shared(mut pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
        // Stable sort: equal keys keep their order, so dedup keeps the first.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        let pairs = pairs.into_boxed_slice();
        let mut hasher = FastHasher::seeded();
        for (k, v) in pairs.iter() {
            hasher.write(k.as_bytes());
            hasher.write_u8(0xff);
            hasher.write(v.as_bytes());
            hasher.write_u8(0xfe);
        }
        let hash = hasher.finish();
        Self { pairs, hash }
    }

    /// The empty set.
    pub fn empty() -> Self {
        Self::new(Vec::new())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.pairs[i].1)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The precomputed hash.
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// Heap bytes held by the set (strings, counted as if unshared, and
    /// the pair array).
    pub fn heap_bytes(&self) -> usize {
        self.pairs.len() * std::mem::size_of::<(Arc<str>, Arc<str>)>()
            + self
                .pairs
                .iter()
                .map(|(k, v)| k.len() + v.len() + 32)
                .sum::<usize>()
    }
}

/// A fast multiply-rotate hasher (the FxHash scheme) seeded once per
/// process from the standard library's random keys: label sets are hashed
/// on every ingested point with attributes, where SipHash showed up in
/// profiles; the seed keeps collisions from being crafted offline.
#[derive(Debug, Clone, Copy)]
pub struct FastHasher(u64);

const FX_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

fn process_seed() -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x7a11_u64))
}

impl FastHasher {
    /// A hasher starting from the process seed.
    pub fn seeded() -> Self {
        Self(process_seed())
    }

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 56);
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// For maps keyed by [`LabelSet`]: its hash is already seeded and mixed,
/// so the map uses it as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is expected; fold anything else in.
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(FX_MULTIPLIER);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 ^= word;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Map hasher for label-set keys.
pub type LabelHashing = std::hash::BuildHasherDefault<PassThrough>;

/// Map hasher for metric names (looked up once per ingested point).
#[derive(Debug, Default, Clone, Copy)]
pub struct NameHashing;

impl std::hash::BuildHasher for NameHashing {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher::seeded()
    }
}

/// Interned label sets and metric names.
#[derive(Debug, Default)]
pub struct Interner {
    sets: HashMap<u64, Vec<Labels>, LabelHashing>,
    names: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `labels`, adopting it when it is new.
    pub fn labels(&mut self, labels: &Labels) -> Labels {
        let bucket = self.sets.entry(labels.hash).or_default();
        if let Some(existing) = bucket.iter().find(|l| ***l == **labels) {
            return Arc::clone(existing);
        }
        bucket.push(Arc::clone(labels));
        Arc::clone(labels)
    }

    /// The shared copy of a metric name.
    pub fn name(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(existing) = self.names.get(&**name) {
            return Arc::clone(existing);
        }
        self.names.insert(Arc::clone(name));
        Arc::clone(name)
    }

    /// Forgets sets and names no series uses any more.
    pub fn sweep(&mut self) {
        for bucket in self.sets.values_mut() {
            bucket.retain(|l| Arc::strong_count(l) > 1);
        }
        self.sets.retain(|_, bucket| !bucket.is_empty());
        self.names.retain(|name| Arc::strong_count(name) > 1);
    }

    /// Heap bytes held by the interned sets (each counted once).
    pub fn heap_bytes(&self) -> usize {
        self.sets
            .values()
            .flatten()
            .map(|l| l.heap_bytes() + std::mem::size_of::<LabelSet>() + 16)
            .sum::<usize>()
            + self.names.iter().map(|n| n.len() + 16).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Labels {
        Arc::new(LabelSet::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ))
    }

    #[test]
    fn sorted_first_key_wins_and_equal_sets_share_one_copy() {
        let a = set(&[("pod", "x"), ("ns", "a"), ("pod", "y")]);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![("ns", "a"), ("pod", "x")]
        );
        assert_eq!(a.get("pod"), Some("x"));
        assert_eq!(a.get("node"), None);
        let b = set(&[("ns", "a"), ("pod", "x")]);
        assert_eq!(a, b);
        assert_eq!(a.hash_value(), b.hash_value());
        let mut interner = Interner::default();
        let first = interner.labels(&a);
        let second = interner.labels(&b);
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second, a, b));
        interner.sweep();
        assert_eq!(interner.heap_bytes(), 0);
    }
}
