//! Giving freed heap memory back to the system.
//!
//! glibc keeps what the process frees in its arenas, and gives back only
//! the top of each one, past a threshold that grows with the largest
//! buffers it has seen. After a snapshot (or a burst of large requests)
//! most of the heap is free but still resident; `malloc_trim` returns
//! every free page, wherever it lies. The collector calls it once per
//! snapshot, outside the store's lock (docs/benchmarks.md, "Memory per
//! series").

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
