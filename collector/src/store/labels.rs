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

    /// Builds a set from shared strings (snapshot loading shares one copy
    /// of each distinct string across all sets).
    pub fn from_shared(mut pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
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

pub use tally_schema::fasthash::{FastHasher, PassThrough};

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

/// Entries the byte-keyed caches may hold before they are dropped and
/// refilled (a bound against a client that sends endless new resources).
const CACHE_ENTRIES: usize = 1 << 20;

/// A resource label set found by its encoded bytes.
#[derive(Debug, Clone)]
pub struct CachedResource {
    /// Unique while the cache lives; keys the point-attribute cache.
    pub id: u64,
    /// The interned set.
    pub labels: Labels,
}

/// Interned label sets and metric names, plus caches from encoded OTLP
/// bytes to the interned sets: an agent sends the same resources and
/// point attributes every export, so after the first request flattening
/// finds each set by hashing bytes instead of decoding and building it.
/// Cached sets are the interned ones, so the store's series lookups
/// compare them by pointer.
#[derive(Debug, Default)]
pub struct Interner {
    sets: ByHash<Labels>,
    names: HashSet<Arc<str>>,
    /// Encoded resource → its set, by the bytes' hash.
    resources: ByHash<(Box<[u8]>, CachedResource)>,
    /// (Resource id, encoded point attributes) → the point's set.
    point_sets: ByHash<(u64, Box<[u8]>, Labels)>,
    cached: usize,
    next_resource: u64,
}

/// Entries by a hash computed by the caller (collisions share a bucket).
type ByHash<T> = HashMap<u64, Bucket<T>, LabelHashing>;

/// The entries under one hash: nearly always one, held inline (a vector
/// per entry cost an allocation per label set and per cache entry).
#[derive(Debug)]
enum Bucket<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Bucket<T> {
    fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            Bucket::One(item) => std::slice::from_ref(item).iter(),
            Bucket::Many(items) => items.iter(),
        }
    }

    /// Keeps the entries `keep` accepts; false when none is left.
    fn retain(&mut self, keep: impl Fn(&T) -> bool) -> bool {
        match self {
            Bucket::One(item) => keep(item),
            Bucket::Many(items) => {
                items.retain(keep);
                !items.is_empty()
            }
        }
    }
}

/// Adds `item` under `hash`.
fn add<T>(map: &mut ByHash<T>, hash: u64, item: T) {
    match map.entry(hash) {
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(Bucket::One(item));
        }
        std::collections::hash_map::Entry::Occupied(mut slot) => {
            let items = match std::mem::replace(slot.get_mut(), Bucket::Many(Vec::new())) {
                Bucket::One(first) => vec![first, item],
                Bucket::Many(mut items) => {
                    items.push(item);
                    items
                }
            };
            *slot.get_mut() = Bucket::Many(items);
        }
    }
}

/// The interner, shared by the store and the flattening of requests
/// (which runs outside the store's lock, on several threads).
pub type SharedInterner = Arc<std::sync::Mutex<Interner>>;

/// Locks the shared interner (a panic elsewhere leaves it consistent:
/// every method completes its update before returning).
pub fn lock(interner: &SharedInterner) -> std::sync::MutexGuard<'_, Interner> {
    interner.lock().unwrap_or_else(|p| p.into_inner())
}

fn bytes_hash(salt: u64, bytes: &[u8]) -> u64 {
    let mut hasher = FastHasher::seeded();
    hasher.write_u64(salt);
    hasher.write(bytes);
    hasher.finish()
}

impl Interner {
    /// The shared copy of `labels`, adopting it when it is new.
    pub fn labels(&mut self, labels: &Labels) -> Labels {
        if let Some(existing) = self
            .sets
            .get(&labels.hash)
            .and_then(|bucket| bucket.iter().find(|l| ***l == **labels))
        {
            return Arc::clone(existing);
        }
        add(&mut self.sets, labels.hash, Arc::clone(labels));
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

    /// The shared copy of a metric name, allocating only when it is new.
    pub fn name_of(&mut self, name: &str) -> Arc<str> {
        if let Some(existing) = self.names.get(name) {
            return Arc::clone(existing);
        }
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }

    /// The resource whose encoded `Resource` message is `bytes`, if cached.
    pub fn resource(&self, bytes: &[u8]) -> Option<CachedResource> {
        self.resources
            .get(&bytes_hash(0, bytes))?
            .iter()
            .find(|(key, _)| **key == *bytes)
            .map(|(_, resource)| resource.clone())
    }

    /// Interns `labels`, built from the resource encoded as `bytes`, and
    /// caches it under those bytes.
    pub fn adopt_resource(&mut self, bytes: &[u8], labels: &Labels) -> CachedResource {
        self.make_room();
        let resource = CachedResource {
            id: self.next_resource,
            labels: self.labels(labels),
        };
        self.next_resource += 1;
        self.cached += 1;
        add(
            &mut self.resources,
            bytes_hash(0, bytes),
            (bytes.into(), resource.clone()),
        );
        resource
    }

    /// The set of a point of `resource` whose encoded attributes are
    /// `key`, if cached.
    pub fn point_set(&self, resource: u64, key: &[u8]) -> Option<Labels> {
        self.point_sets
            .get(&bytes_hash(resource, key))?
            .iter()
            .find(|(owner, bytes, _)| *owner == resource && **bytes == *key)
            .map(|(_, _, labels)| Arc::clone(labels))
    }

    /// Interns a point's `labels` and caches them under its resource and
    /// encoded attributes.
    pub fn adopt_point_set(&mut self, resource: u64, key: &[u8], labels: &Labels) -> Labels {
        self.make_room();
        let labels = self.labels(labels);
        self.cached += 1;
        add(
            &mut self.point_sets,
            bytes_hash(resource, key),
            (resource, key.into(), Arc::clone(&labels)),
        );
        labels
    }

    fn make_room(&mut self) {
        if self.cached >= CACHE_ENTRIES {
            self.clear_caches();
        }
    }

    /// Empties the byte-keyed caches (the interned sets stay).
    pub fn clear_caches(&mut self) {
        self.resources.clear();
        self.point_sets.clear();
        self.cached = 0;
    }

    /// Forgets sets and names no series uses any more (the caches, which
    /// would keep them alive, are emptied first and refill on demand).
    pub fn sweep(&mut self) {
        self.clear_caches();
        self.sets
            .retain(|_, bucket| bucket.retain(|l| Arc::strong_count(l) > 1));
        self.names.retain(|name| Arc::strong_count(name) > 1);
    }

    /// Heap bytes held by the interned sets (each counted once) and the
    /// caches' keys.
    pub fn heap_bytes(&self) -> usize {
        self.sets
            .values()
            .flat_map(Bucket::iter)
            .map(|l| l.heap_bytes() + std::mem::size_of::<LabelSet>() + 16)
            .sum::<usize>()
            + self.names.iter().map(|n| n.len() + 16).sum::<usize>()
            + self
                .resources
                .values()
                .flat_map(Bucket::iter)
                .map(|(key, _)| key.len() + 48)
                .sum::<usize>()
            + self
                .point_sets
                .values()
                .flat_map(Bucket::iter)
                .map(|(_, key, _)| key.len() + 48)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries whose hashes collide share a bucket and are all found.
    #[test]
    fn colliding_entries_share_a_bucket() {
        let mut map: ByHash<u32> = ByHash::default();
        add(&mut map, 7, 1);
        assert!(matches!(map.get(&7), Some(Bucket::One(1))));
        add(&mut map, 7, 2);
        add(&mut map, 7, 3);
        add(&mut map, 8, 4);
        let seven: Vec<u32> = map
            .get(&7)
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(seven, vec![1, 2, 3]);
        map.retain(|_, bucket| bucket.retain(|n| n % 2 == 1));
        let seven: Vec<u32> = map
            .get(&7)
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(seven, vec![1, 3]);
        assert!(!map.contains_key(&8), "an emptied bucket goes");
    }

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
