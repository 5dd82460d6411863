//! Giving freed heap memory back to the system.
//!
//! glibc keeps what the process frees in its arenas. It gives back the
//! top of an arena past a trim threshold, and serves large blocks from
//! their own mappings past an mmap threshold; both thresholds rise with
//! the largest block freed (up to 32 MiB and 64 MiB), so after a snapshot
//! (blocks of megabytes on worker threads) those blocks stay in the
//! arenas, resident. The collector fixes both at 1 MiB when it opens
//! (an operator's `MALLOC_*_` or `GLIBC_TUNABLES` settings win), and
//! calls `malloc_trim`, which returns free pages inside the arenas, once
//! per snapshot, outside the store's lock (docs/benchmarks.md, "Memory
//! per series").

/// Both thresholds, fixed.
const THRESHOLD_BYTES: i32 = 1 << 20;

/// Fixes glibc's mmap and trim thresholds at 1 MiB, unless the
/// environment configures the allocator; true when they were set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn fix_allocator_thresholds() -> bool {
    let configured = std::env::vars_os().any(|(key, _)| {
        let key = key.to_string_lossy();
        key.starts_with("MALLOC_") || key == "GLIBC_TUNABLES"
    });
    if configured {
        return false;
    }
    // SAFETY: mallopt takes two integers and changes only the allocator's
    // own parameters, under its lock; glibc allows it at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD_BYTES) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD_BYTES) == 1
    }
}

/// Fixes glibc's thresholds; a no-op elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn fix_allocator_thresholds() -> bool {
    false
}

/// Returns free heap pages to the system; true when some were returned.
/// A no-op where the C library has no `malloc_trim`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and touches only the
    // allocator's own free lists, under the arenas' own locks; glibc
    // documents it as safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Returns free heap pages to the system; true when some were returned.
/// A no-op where the C library has no `malloc_trim`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn resident_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon")
    }

    /// A block of a few megabytes goes back to the system when freed,
    /// even after a larger one raised glibc's dynamic thresholds.
    #[test]
    fn large_blocks_go_back_when_freed() {
        if !fix_allocator_thresholds() {
            println!("SKIP large_blocks_go_back_when_freed: MALLOC_* or GLIBC_TUNABLES is set");
            return;
        }
        std::thread::spawn(|| {
            drop(vec![1u8; 24 << 20]);
            let before = resident_kib();
            let block = vec![3u8; 12 << 20];
            let held = resident_kib();
            drop(block);
            let after = resident_kib();
            assert!(
                held > before + 10_000 && after + 10_000 < held,
                "before {before} kB, holding {held} kB, after the free {after} kB"
            );
        })
        .join()
        .expect("test thread");
    }

    /// Freed pieces pinned below a live allocation stay resident until
    /// the trim gives their pages back.
    #[test]
    fn freed_pages_between_live_pieces_go_back() {
        // On a thread of its own: an arena that the other tests do not use.
        std::thread::spawn(|| {
            let mut pieces: Vec<Vec<u8>> = (0..4000).map(|_| vec![1u8; 16 << 10]).collect();
            let pin = vec![2u8; 64];
            let before = resident_kib();
            for piece in pieces.iter_mut().step_by(2) {
                *piece = Vec::new();
            }
            let freed = resident_kib();
            assert!(release_free_memory(), "nothing was released");
            let after = resident_kib();
            assert!(
                after + 16_000 < freed,
                "before {before} kB, freed {freed} kB, after the trim {after} kB"
            );
            drop((pieces, pin));
        })
        .join()
        .expect("test thread");
    }
}
