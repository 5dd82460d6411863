//! A gzipped rotation (`<n>.log.<stamp>.gz`) read from where its plain
//! file was left: when the agent was away while kubelet rotated and
//! compressed a file it had not finished, the lines it had not delivered
//! are still in the `.gz`. The file is found by its head (the plain
//! file's fingerprint, decompressed); offsets are in decompressed bytes.
//! A compressed file never grows: at its end it is finished.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::tail::{Events, FINGERPRINT_BYTES, FileId, Line, split_lines};

/// The decompressed head of a `.gz` file (up to [`FINGERPRINT_BYTES`]).
pub fn head(path: &Path) -> io::Result<Vec<u8>> {
    let mut decoder = MultiGzDecoder::new(File::open(path)?);
    let mut head = vec![0u8; FINGERPRINT_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        let n = decoder.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(head)
}

/// A `.gz` file read forward once.
pub struct GzTail {
    id: Arc<FileId>,
    decoder: MultiGzDecoder<File>,
    /// Decompressed bytes consumed (whole lines handed out).
    offset: u64,
    /// Decompressed bytes not yet split into lines.
    pending: Vec<u8>,
    max_line: usize,
    skipping: bool,
    ended: bool,
}

impl GzTail {
    /// Opens `path` to resume at decompressed `offset` (the bytes before
    /// it are decompressed and skipped).
    pub fn open(path: &Path, offset: u64, max_line: usize) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let id = Arc::new(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint: head(path)?,
        });
        let mut decoder = MultiGzDecoder::new(file);
        let skipped = io::copy(&mut (&mut decoder).take(offset), &mut io::sink())?;
        Ok(Self {
            id,
            decoder,
            offset: skipped,
            pending: Vec::new(),
            max_line: max_line.max(1),
            skipping: false,
            ended: false,
        })
    }

    /// Its identity (the `.gz` file's inode, the decompressed head).
    pub fn id(&self) -> &FileId {
        &self.id
    }

    /// Reads about `budget` decompressed bytes into whole lines; at the
    /// end, a last line without a newline goes out too and the file is
    /// finished.
    pub fn read(&mut self, budget: usize) -> io::Result<(Vec<Line>, Events)> {
        let mut events = Events::default();
        if self.ended {
            events.finished = true;
            return Ok((Vec::new(), events));
        }
        let want = budget.max(self.max_line + 1);
        let mut chunk = vec![0u8; want.saturating_sub(self.pending.len()).max(4096)];
        let mut filled = 0;
        while filled < chunk.len() {
            let n = self.decoder.read(&mut chunk[filled..])?;
            if n == 0 {
                self.ended = true;
                break;
            }
            filled += n;
        }
        self.pending.extend_from_slice(&chunk[..filled]);
        let (mut lines, consumed) = split_lines(
            &self.pending,
            self.offset,
            self.max_line,
            &mut self.skipping,
            &self.id,
        );
        self.pending.drain(..consumed);
        self.offset += consumed as u64;
        if self.ended {
            if !self.pending.is_empty() && !self.skipping {
                let rest = std::mem::take(&mut self.pending);
                self.offset += rest.len() as u64;
                lines.push(Line {
                    bytes: rest,
                    cut: 0,
                    end: self.offset,
                    file: Arc::clone(&self.id),
                });
            }
            self.pending.clear();
            events.finished = true;
        }
        Ok((lines, events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(path: &Path, text: &[u8]) {
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(path).expect("create"), Default::default());
        encoder.write_all(text).expect("write");
        encoder.finish().expect("finish");
    }

    #[test]
    fn resumes_at_a_decompressed_offset_and_finishes_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log.20261201-161500.gz");
        gzip(&path, b"first\nsecond\nthird\nno newline");
        assert_eq!(
            head(&path).expect("head"),
            b"first\nsecond\nthird\nno newline"
        );
        let mut tail = GzTail::open(&path, 6, 1024).expect("open");
        let (lines, events) = tail.read(4).expect("read");
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.bytes.as_slice()).collect();
        assert_eq!(bytes, [&b"second"[..], b"third", b"no newline"]);
        assert_eq!(lines[0].end, 13);
        assert_eq!(lines[2].end, 29);
        assert!(events.finished);
        assert!(tail.read(4).expect("again").1.finished);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log.1.gz");
        std::fs::write(&path, b"\x1f\x8b\x08\x00garbage").expect("write");
        assert!(
            GzTail::open(&path, 0, 1024)
                .and_then(|mut t| t.read(1024))
                .is_err()
        );
    }
}
