//! Filesystem events (inotify) that wake the logs source: a new pod or
//! container directory, a file created or renamed into place, a write.
//! The rescan stays the fallback (a full event queue, a filesystem
//! without inotify, too few watches), so an event missed is a delay,
//! never a loss.
//!
//! Directories are watched, not files: a directory watch reports its
//! files' writes too, and survives the file's rotation.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

/// Events asked for on each directory.
const MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR;

/// `struct inotify_event` without its name: wd, mask, cookie, len.
const EVENT_HEADER: usize = 16;

/// What woke the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wake {
    /// Something was created or moved into place, or events were lost:
    /// scan again now.
    pub rescan: bool,
    /// A file was written: read now.
    pub written: bool,
}

/// An inotify instance and the directories it watches.
#[derive(Debug)]
pub struct Watcher {
    fd: AsyncFd<File>,
    /// Watched directory → watch descriptor.
    watched: HashMap<PathBuf, i32>,
}

impl Watcher {
    /// A new instance (no directories yet).
    #[allow(unsafe_code)]
    pub fn new() -> io::Result<Self> {
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns; the File
        // owns it from here and AsyncFd owns the File until it is dropped.
        let file = unsafe { File::from_raw_fd(raw) };
        // SAFETY: the File's descriptor stays open and is not replaced
        // while the AsyncFd holds it.
        let fd = unsafe { AsyncFd::register(file)? };
        Ok(Self {
            fd,
            watched: HashMap::new(),
        })
    }

    /// Watches `dir` (once; watching it again is a no-op).
    #[allow(unsafe_code)]
    pub fn watch(&mut self, dir: &Path) -> io::Result<()> {
        if self.watched.contains_key(dir) {
            return Ok(());
        }
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: a valid inotify fd and a NUL-terminated path that
        // outlives the call.
        let wd =
            unsafe { libc::inotify_add_watch(self.fd.get_ref().as_raw_fd(), path.as_ptr(), MASK) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        self.watched.insert(dir.to_path_buf(), wd);
        Ok(())
    }

    /// Directories watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Waits for events and drains them all.
    pub async fn wait(&mut self) -> io::Result<Wake> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| drain(fd.get_ref())) {
                Ok(Ok((wake, gone))) => {
                    if !gone.is_empty() {
                        self.watched.retain(|_, wd| !gone.contains(wd));
                    }
                    return Ok(wake);
                }
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Reads every pending event: what they ask for, and the watches the
/// kernel dropped (their directory is gone).
fn drain(mut file: &File) -> io::Result<(Wake, Vec<i32>)> {
    let mut wake = Wake::default();
    let mut gone = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut any = false;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && any => {
                return Ok((wake, gone));
            }
            Err(error) => return Err(error),
        };
        any = true;
        let mut at = 0;
        while at + EVENT_HEADER <= n {
            let word = |i: usize| {
                let mut bytes = [0u8; 4];
                bytes.copy_from_slice(&buffer[at + i * 4..at + i * 4 + 4]);
                u32::from_ne_bytes(bytes)
            };
            let (wd, mask, name_len) = (word(0) as i32, word(1), word(3) as usize);
            if mask & (libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_Q_OVERFLOW) != 0 {
                wake.rescan = true;
            }
            if mask & (libc::IN_MODIFY | libc::IN_CLOSE_WRITE) != 0 {
                wake.written = true;
            }
            if mask & libc::IN_IGNORED != 0 {
                gone.push(wd);
                wake.rescan = true;
            }
            at += EVENT_HEADER + name_len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn next(watcher: &mut Watcher) -> Wake {
        tokio::time::timeout(Duration::from_secs(5), watcher.wait())
            .await
            .expect("an event within 5 s")
            .expect("read events")
    }

    #[tokio::test]
    async fn creation_writes_and_removal_wake_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut watcher = Watcher::new().expect("inotify");
        watcher.watch(dir.path()).expect("watch");
        watcher.watch(dir.path()).expect("again: a no-op");
        assert_eq!(watcher.len(), 1);

        std::fs::create_dir(dir.path().join("pod")).expect("mkdir");
        assert!(next(&mut watcher).await.rescan, "a new directory");

        let sub = dir.path().join("pod");
        watcher.watch(&sub).expect("watch pod");
        std::fs::write(sub.join("0.log"), "line\n").expect("write");
        let wake = next(&mut watcher).await;
        assert!(wake.rescan, "a new file");

        std::fs::write(sub.join("0.log"), "more\n").expect("write");
        assert!(next(&mut watcher).await.written, "a write");

        std::fs::remove_file(sub.join("0.log")).expect("rm");
        std::fs::remove_dir(&sub).expect("rmdir");
        // The removal's events may come in more than one read.
        for _ in 0..3 {
            if watcher.len() == 1 {
                break;
            }
            let _ = next(&mut watcher).await;
        }
        assert_eq!(
            watcher.len(),
            1,
            "the kernel dropped the gone directory's watch"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut watcher = Watcher::new().expect("inotify");
            let error = watcher
                .watch(Path::new("/nonexistent/tally"))
                .expect_err("no such directory");
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
            assert!(watcher.is_empty());
        });
    }
}
