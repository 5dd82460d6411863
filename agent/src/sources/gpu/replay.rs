//! Replays recorded GPU readings: the stand-in for NVML on machines
//! without a GPU (CI). Fixtures are [`Recording`]s written by
//! `tally gpu-check` on a real GPU, or by hand from the NVML documentation
//! (their `source` says which). Frames are served in order and the last
//! one repeats, with the clock moving on, so counters keep their shape.

use std::path::{Path, PathBuf};

use super::backend::{GpuBackend, GpuError};
use super::readings::{FIXTURE_VERSION, Frame, Recording};

/// The largest fixture read (a recording of ~30 frames is far smaller).
const MAX_FIXTURE_BYTES: u64 = 64 * 1024 * 1024;

/// Serves a recording's frames.
#[derive(Debug)]
pub struct ReplayBackend {
    path: PathBuf,
    frames: Vec<Frame>,
    next: usize,
}

impl ReplayBackend {
    /// Loads `path`; a clear error when it is missing, too large, not JSON
    /// of the fixture format, of another version, or empty.
    pub fn open(path: &Path) -> Result<Self, GpuError> {
        let fail = |reason: String| GpuError::Fixture {
            path: path.display().to_string(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .len();
        if size > MAX_FIXTURE_BYTES {
            return Err(fail(format!(
                "{size} bytes, over the {MAX_FIXTURE_BYTES}-byte limit"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::from_json(path, &text)
    }

    /// Parses a recording from `text` (`path` names it in errors).
    pub fn from_json(path: &Path, text: &str) -> Result<Self, GpuError> {
        let fail = |reason: String| GpuError::Fixture {
            path: path.display().to_string(),
            reason,
        };
        let recording: Recording = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        if recording.version != FIXTURE_VERSION {
            return Err(fail(format!(
                "version {} (this agent reads {FIXTURE_VERSION})",
                recording.version
            )));
        }
        if recording.frames.is_empty() {
            return Err(fail("no frames".to_owned()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            frames: recording.frames,
            next: 0,
        })
    }
}

impl GpuBackend for ReplayBackend {
    fn read(&mut self) -> Result<Frame, GpuError> {
        let last = self.frames.len() - 1;
        let index = self.next.min(last);
        let mut frame = self.frames[index].clone();
        if self.next > last {
            // Past the end: the last frame again, later, and without its
            // events (they happened once).
            let step = if last > 0 {
                self.frames[last]
                    .time_ms
                    .saturating_sub(self.frames[last - 1].time_ms)
                    .max(1)
            } else {
                1000
            };
            frame.time_ms += step * (self.next - last) as u64;
            frame.events.clear();
        }
        self.next += 1;
        Ok(frame)
    }

    fn describe(&self) -> String {
        format!("replay {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(frames: usize) -> String {
        let frames: Vec<String> = (0..frames)
            .map(|i| {
                format!(
                    r#"{{"time_ms": {}, "devices": [], "events": [{{"uuid": "GPU-1", "kind": "xid", "data": 79, "time_ms": 1}}]}}"#,
                    1000 + i * 1000
                )
            })
            .collect();
        format!(
            r#"{{"version": 1, "source": "documentation", "frames": [{}]}}"#,
            frames.join(",")
        )
    }

    #[test]
    fn frames_play_in_order_then_the_last_repeats_later_without_events() {
        let mut replay =
            ReplayBackend::from_json(Path::new("two.json"), &recording(2)).expect("fixture");
        let times: Vec<(u64, usize)> = (0..4)
            .map(|_| {
                let frame = replay.read().expect("frame");
                (frame.time_ms, frame.events.len())
            })
            .collect();
        assert_eq!(times, [(1000, 1), (2000, 1), (3000, 0), (4000, 0)]);
        assert_eq!(replay.describe(), "replay two.json");
    }

    #[test]
    fn bad_fixtures_are_clear_errors() {
        let path = Path::new("bad.json");
        let reason = |text: &str| match ReplayBackend::from_json(path, text) {
            Err(GpuError::Fixture { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason("{").contains("EOF"));
        assert!(reason(r#"{"version": 2, "source": "x", "frames": []}"#).contains("version 2"));
        assert!(reason(r#"{"version": 1, "source": "x", "frames": []}"#).contains("no frames"));
        assert!(
            reason(r#"{"version": 1, "source": "x", "frames": [], "extra": 1}"#)
                .contains("unknown field")
        );
        match ReplayBackend::open(Path::new("/nonexistent/fixture.json")) {
            Err(error) => assert_eq!(error.kind(), "fixture"),
            Ok(_) => panic!("a missing file opened"),
        }
    }
}
