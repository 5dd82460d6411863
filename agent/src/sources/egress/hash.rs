//! Fast hashing for the source's per-connection maps: 100,000 lookups a
//! pass make SipHash's cost visible (the shared hasher is seeded per
//! process, so collisions cannot be crafted offline).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

pub use tally_schema::fasthash::{FastHasher, PassThrough};

use super::flow::FlowKey;

/// A map with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A set with [`FastHasher`].
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// A map keyed by [`flow_hash`] values.
pub type FlowMap<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

fn address_words(address: IpAddr) -> (u64, u64) {
    let wide = match address {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    ((wide >> 64) as u64, wide as u64)
}

/// A well-mixed 64-bit digest of a connection's identity. The ledger
/// keys connections by it instead of the 40-byte tuple: with 100,000
/// live connections a collision is about one in 10^9.
pub fn flow_hash(key: &FlowKey) -> u64 {
    let mut hasher = FastHasher::seeded();
    let (a, b) = address_words(key.original.src);
    let (c, d) = address_words(key.original.dst);
    hasher.write_u64(a);
    hasher.write_u64(b);
    hasher.write_u64(c);
    hasher.write_u64(d);
    hasher.write_u64(
        u64::from(key.original.src_port)
            | u64::from(key.original.dst_port) << 16
            | u64::from(key.protocol) << 32
            | u64::from(key.zone) << 40,
    );
    // Murmur3's finaliser spreads the bits hashbrown reads (top 7 for its
    // control bytes, low for the bucket).
    let mut x = hasher.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::super::flow::Tuple;
    use super::*;

    #[test]
    fn flow_hashes_differ_by_every_field_and_do_not_collide_in_a_large_table() {
        let key = |src: u32, port: u16, protocol: u8, zone: u16| FlowKey {
            protocol,
            zone,
            original: Tuple {
                src: IpAddr::V4(src.into()),
                dst: "10.0.0.1".parse().unwrap(),
                src_port: port,
                dst_port: 443,
            },
        };
        let base = flow_hash(&key(1, 1, 6, 0));
        assert_ne!(base, flow_hash(&key(2, 1, 6, 0)));
        assert_ne!(base, flow_hash(&key(1, 2, 6, 0)));
        assert_ne!(base, flow_hash(&key(1, 1, 17, 0)));
        assert_ne!(base, flow_hash(&key(1, 1, 6, 1)));
        let mut seen = FastSet::default();
        for i in 0..200_000u32 {
            assert!(seen.insert(flow_hash(&key(0x0a00_0000 + i / 7, (i % 7) as u16, 6, 0))));
        }
    }
}
