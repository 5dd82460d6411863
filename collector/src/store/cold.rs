//! Cold history: once a snapshot is written, every series' sealed hours,
//! days and full raw chunks are read from that file with `pread` when a
//! query needs them, instead of being held on the heap. A series then
//! keeps in memory only what is still being written (the open hour, the
//! open raw chunk, anything sealed since the snapshot) and a few offsets,
//! so the collector's memory per series does not grow with its history.
//!
//! The snapshot file is immutable once renamed into place. When the next
//! one replaces it, the old file is unlinked but stays open for as long as
//! a [`Span`] still points into it (a series changed while the new file was
//! being written keeps its old spans until the snapshot after). Pages read
//! sit in the kernel's page cache, which the kernel reclaims under memory
//! pressure; they are not the process's anonymous memory.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads from cold files that failed (I/O error or a short file): the
/// series' history past that point is missing from answers until the
/// write-ahead log or the next snapshot restores it.
static READ_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Reads from cold files.
static READS: AtomicU64 = AtomicU64::new(0);
/// Bytes read from cold files.
static READ_BYTES: AtomicU64 = AtomicU64::new(0);

/// Cold reads that failed, since the process started.
pub fn read_errors() -> u64 {
    READ_ERRORS.load(Ordering::Relaxed)
}

/// Cold reads and bytes read, since the process started.
pub fn reads() -> (u64, u64) {
    (
        READS.load(Ordering::Relaxed),
        READ_BYTES.load(Ordering::Relaxed),
    )
}

/// A snapshot file that history is read from.
#[derive(Debug)]
pub struct ColdFile {
    file: File,
    path: PathBuf,
}

impl ColdFile {
    /// Wraps an open snapshot file.
    pub fn new(file: File, path: &Path) -> Arc<ColdFile> {
        Arc::new(ColdFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Flushes the file to disk.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }

    /// Appends `len` bytes at `offset` to `out`; false (counted and
    /// logged, `out` unchanged) when they cannot be read.
    fn read_into(&self, offset: u64, len: u32, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        out.resize(start + len as usize, 0);
        READS.fetch_add(1, Ordering::Relaxed);
        match self.file.read_exact_at(&mut out[start..], offset) {
            Ok(()) => {
                READ_BYTES.fetch_add(u64::from(len), Ordering::Relaxed);
                true
            }
            Err(error) => {
                out.truncate(start);
                READ_ERRORS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    path = %self.path.display(),
                    offset,
                    len,
                    %error,
                    "cannot read series history from the snapshot file"
                );
                false
            }
        }
    }
}

/// A run of bytes in a cold file.
#[derive(Debug, Clone)]
pub struct Span {
    /// The file.
    pub file: Arc<ColdFile>,
    /// Offset of the first byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
}

impl PartialEq for Span {
    fn eq(&self, other: &Span) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.offset == other.offset && self.len == other.len
    }
}

impl Span {
    /// Appends the span's bytes to `out`; false when they cannot be read.
    pub fn read_into(&self, out: &mut Vec<u8>) -> bool {
        self.file.read_into(self.offset, self.len, out)
    }

    /// The span without its first `skip` bytes.
    pub fn after(&self, skip: u32) -> Span {
        let skip = skip.min(self.len);
        Span {
            file: Arc::clone(&self.file),
            offset: self.offset + u64::from(skip),
            len: self.len - skip,
        }
    }
}

/// Where a block of a snapshot body lies in its file, for turning
/// positions inside the block into spans.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    /// The file.
    pub file: &'a Arc<ColdFile>,
    /// The block's bytes (a slice of the body read into memory).
    pub block: &'a [u8],
    /// Offset of the block's first byte in the file.
    pub offset: u64,
}

impl Placed<'_> {
    /// The span of `bytes`, which must lie inside the block.
    pub fn span_of(&self, bytes: &[u8]) -> Span {
        let at = bytes.as_ptr() as usize - self.block.as_ptr() as usize;
        Span {
            file: Arc::clone(self.file),
            offset: self.offset + at as u64,
            len: bytes.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_their_bytes_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cold");
        std::fs::write(&path, b"0123456789").expect("write");
        let file = ColdFile::new(File::open(&path).expect("open"), &path);
        let span = Span {
            file: Arc::clone(&file),
            offset: 2,
            len: 5,
        };
        let mut out = b"x".to_vec();
        assert!(span.read_into(&mut out));
        assert_eq!(out, b"x23456");
        assert_eq!(span.after(3).offset, 5);
        assert_eq!(span.after(9).len, 0);
        let errors = read_errors();
        let past_the_end = Span {
            file,
            offset: 8,
            len: 5,
        };
        let mut out = b"y".to_vec();
        assert!(!past_the_end.read_into(&mut out));
        assert_eq!(out, b"y", "a failed read leaves the buffer as it was");
        assert!(read_errors() > errors);
    }
}
