//! Reading one container's cgroup files into typed stats.
//!
//! Two depths: [`read_fast`] reads what the 1 s sampling loop needs (CPU
//! usage, memory usage and working set: two or three files), [`read_full`]
//! reads everything at the export interval. A missing file leaves its
//! fields `None` (that controller or kernel feature is absent); a malformed
//! file or a failed read is reported through `report` and also leaves its
//! fields `None`; a cgroup deleted mid-read is [`Vanished`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::parse::{self, IoTotals, ParseError, Pressure};

/// Nanoseconds per second.
const NANOS: f64 = 1e9;
/// Microseconds per second.
const MICROS: f64 = 1e6;
/// `USER_HZ`, the unit of v1 `cpuacct.stat`: fixed at 100 by the kernel's
/// ABI on every architecture Kubernetes runs on, whatever `CONFIG_HZ` is.
const USER_HZ: f64 = 100.0;
/// v1 reports "unlimited" memory as a huge page-aligned number.
const V1_UNLIMITED: u64 = 1 << 62;

/// The cgroup disappeared while being read (the container exited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cgroup vanished")]
pub struct Vanished;

/// Where one container's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFiles {
    version: u8,
    v2: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    memory: Option<PathBuf>,
    blkio: Option<PathBuf>,
    psi: Option<PathBuf>,
}

impl CgroupFiles {
    /// The directories of the cgroup at `relative` in each hierarchy.
    pub fn new(layout: &Layout, relative: &str) -> Self {
        let under = |root: &Option<PathBuf>| root.as_ref().map(|r| r.join(relative));
        match layout {
            Layout::V2 { root } => Self {
                version: 2,
                v2: Some(root.join(relative)),
                cpu: None,
                cpuacct: None,
                memory: None,
                blkio: None,
                psi: Some(root.join(relative)),
            },
            Layout::V1 {
                cpu,
                cpuacct,
                memory,
                blkio,
                unified,
            } => Self {
                version: 1,
                v2: None,
                cpu: under(cpu),
                cpuacct: under(cpuacct),
                memory: under(memory),
                blkio: under(blkio),
                psi: under(unified),
            },
        }
    }

    /// 1 or 2.
    pub fn version(&self) -> u8 {
        self.version
    }

    fn primary(&self) -> Option<&Path> {
        self.v2
            .as_deref()
            .or(self.memory.as_deref())
            .or(self.cpuacct.as_deref())
    }
}

/// What the 1 s sampling loop reads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FastSample {
    /// Cumulative CPU time, seconds.
    pub cpu_usage_seconds: Option<f64>,
    /// Memory usage, bytes.
    pub memory_usage_bytes: Option<u64>,
    /// Working set, bytes.
    pub memory_working_set_bytes: Option<u64>,
}

/// Everything read at the export interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    /// CPU usage, memory usage and working set.
    pub fast: FastSample,
    /// User-mode CPU seconds.
    pub cpu_user_seconds: Option<f64>,
    /// Kernel-mode CPU seconds.
    pub cpu_system_seconds: Option<f64>,
    /// CFS periods elapsed.
    pub cpu_periods: Option<u64>,
    /// CFS periods throttled.
    pub cpu_throttled_periods: Option<u64>,
    /// Time throttled, seconds.
    pub cpu_throttled_seconds: Option<f64>,
    /// CPU limit in cores; `None` when unlimited or unknown.
    pub cpu_limit_cores: Option<f64>,
    /// CPU weight (v2 scale).
    pub cpu_weight: Option<u64>,
    /// Anonymous memory, bytes.
    pub memory_rss_bytes: Option<u64>,
    /// Page cache, bytes.
    pub memory_cache_bytes: Option<u64>,
    /// Peak usage, bytes.
    pub memory_peak_bytes: Option<u64>,
    /// Memory limit; `None` when unlimited or unknown.
    pub memory_limit_bytes: Option<u64>,
    /// OOM events (v2 only).
    pub oom_events: Option<u64>,
    /// OOM kills.
    pub oom_kills: Option<u64>,
    /// Block IO totals.
    pub io: Option<IoTotals>,
    /// CPU pressure.
    pub pressure_cpu: Option<Pressure>,
    /// Memory pressure.
    pub pressure_memory: Option<Pressure>,
    /// IO pressure.
    pub pressure_io: Option<Pressure>,
}

/// Receives each problem as `(kind, message)`; kinds are `io` and `parse`.
pub type Report<'a> = &'a mut dyn FnMut(&'static str, String);

struct FileReader<'r, 'a> {
    report: &'r mut Report<'a>,
    missing: bool,
}

impl FileReader<'_, '_> {
    fn read(&mut self, dir: Option<&Path>, name: &str) -> Option<String> {
        let path = dir?.join(name);
        match std::fs::read_to_string(&path) {
            Ok(content) => Some(content),
            Err(error) => self.failed(&path, error),
        }
    }

    /// Reads through a kept-open handle with `pread` at offset 0, which
    /// makes the kernel regenerate the file: a tenth of the cost of
    /// open + read + close on a deep cgroupfs path. Falls back to a plain
    /// read without a slot.
    fn read_kept(
        &mut self,
        slot: Option<&mut Option<File>>,
        dir: Option<&Path>,
        name: &str,
    ) -> Option<String> {
        let Some(slot) = slot else {
            return self.read(dir, name);
        };
        let path = dir?.join(name);
        if slot.is_none() {
            match File::open(&path) {
                Ok(file) => *slot = Some(file),
                Err(error) => return self.failed(&path, error),
            }
        }
        let file = slot.as_ref()?;
        let mut content = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            match file.read_at(&mut chunk, content.len() as u64) {
                Ok(0) => break,
                Ok(n) => content.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    *slot = None;
                    return self.failed(&path, error);
                }
            }
        }
        match String::from_utf8(content) {
            Ok(text) => Some(text),
            Err(_) => {
                (self.report)("parse", format!("{}: not UTF-8", path.display()));
                None
            }
        }
    }

    fn failed(&mut self, path: &Path, error: io::Error) -> Option<String> {
        match error.kind() {
            io::ErrorKind::NotFound => self.missing = true,
            // Reading a file of a cgroup that is being removed fails with
            // ENODEV; treat it like a missing file.
            _ if error.raw_os_error() == Some(libc::ENODEV) => self.missing = true,
            _ => (self.report)("io", format!("{}: {error}", path.display())),
        }
        None
    }

    fn parse_content<T>(
        &mut self,
        content: Option<String>,
        dir: Option<&Path>,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        match parse(&content?) {
            Ok(value) => Some(value),
            Err(error) => {
                let path = dir.map(|d| d.join(name)).unwrap_or_default();
                (self.report)("parse", format!("{}: {error}", path.display()));
                None
            }
        }
    }

    fn parsed<T>(
        &mut self,
        dir: Option<&Path>,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let content = self.read(dir, name);
        self.parse_content(content, dir, name, parse)
    }

    fn parsed_kept<T>(
        &mut self,
        slot: Option<&mut Option<File>>,
        dir: Option<&Path>,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let content = self.read_kept(slot, dir, name);
        self.parse_content(content, dir, name, parse)
    }
}

/// Open handles to the three files the 1 s loop reads (CPU usage, memory
/// usage, memory.stat), kept for the life of the container.
#[derive(Debug, Default)]
pub struct FastHandles {
    cpu: Option<File>,
    memory: Option<File>,
    memory_stat: Option<File>,
}

impl FastHandles {
    /// File descriptors one container's handles can hold.
    pub const FDS: usize = 3;
}

fn finish<T>(files: &CgroupFiles, reader: &FileReader<'_, '_>, value: T) -> Result<T, Vanished> {
    if reader.missing && files.primary().is_none_or(|dir| !dir.is_dir()) {
        return Err(Vanished);
    }
    Ok(value)
}

fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    // kubelet/cAdvisor: usage - inactive_file, floored at 0.
    usage.map(|u| u.saturating_sub(inactive_file.unwrap_or(0)))
}

/// Reads CPU usage, memory usage and working set, through `handles` when
/// given (kept open between samples).
///
/// `memory.stat` (for inactive_file) is the costly read: the kernel formats
/// some forty counters. When memory usage is exactly what `previous` saw,
/// the previous working set is kept instead of re-reading it; the full read
/// at every export refreshes it regardless.
pub fn read_fast(
    files: &CgroupFiles,
    handles: Option<&mut FastHandles>,
    previous: &FastSample,
    mut report: Report<'_>,
) -> Result<FastSample, Vanished> {
    let mut reader = FileReader {
        report: &mut report,
        missing: false,
    };
    let (cpu, memory_slot, stat) = match handles {
        Some(h) => (
            Some(&mut h.cpu),
            Some(&mut h.memory),
            Some(&mut h.memory_stat),
        ),
        None => (None, None, None),
    };
    let sample = if files.version == 2 {
        let dir = files.v2.as_deref();
        let usage_us = reader
            .parsed_kept(cpu, dir, "cpu.stat", |c| parse::flat_value(c, "usage_usec"))
            .flatten();
        let usage = reader.parsed_kept(memory_slot, dir, "memory.current", parse::single_u64);
        let working_set = match (usage, unchanged_working_set(usage, previous)) {
            (_, Some(kept)) => Some(kept),
            (Some(_), None) => {
                let inactive = reader
                    .parsed_kept(stat, dir, "memory.stat", |c| {
                        parse::flat_value(c, "inactive_file")
                    })
                    .flatten();
                working_set(usage, inactive)
            }
            (None, None) => None,
        };
        FastSample {
            cpu_usage_seconds: usage_us.map(|us| us as f64 / MICROS),
            memory_usage_bytes: usage,
            memory_working_set_bytes: working_set,
        }
    } else {
        let usage_ns = reader.parsed_kept(
            cpu,
            files.cpuacct.as_deref(),
            "cpuacct.usage",
            parse::single_u64,
        );
        let memory = files.memory.as_deref();
        let usage = reader.parsed_kept(
            memory_slot,
            memory,
            "memory.usage_in_bytes",
            parse::single_u64,
        );
        let working_set = match (usage, unchanged_working_set(usage, previous)) {
            (_, Some(kept)) => Some(kept),
            (Some(_), None) => {
                let inactive = reader
                    .parsed_kept(stat, memory, "memory.stat", v1_inactive_file)
                    .flatten();
                working_set(usage, inactive)
            }
            (None, None) => None,
        };
        FastSample {
            cpu_usage_seconds: usage_ns.map(|ns| ns as f64 / NANOS),
            memory_usage_bytes: usage,
            memory_working_set_bytes: working_set,
        }
    };
    finish(files, &reader, sample)
}

/// The previous working set when usage has not moved by a single byte.
fn unchanged_working_set(usage: Option<u64>, previous: &FastSample) -> Option<u64> {
    match (usage, previous.memory_usage_bytes) {
        (Some(now), Some(before)) if now == before => previous.memory_working_set_bytes,
        _ => None,
    }
}

fn v1_inactive_file(content: &str) -> Result<Option<u64>, ParseError> {
    // Hierarchical total first, as cAdvisor does.
    match parse::flat_value(content, "total_inactive_file")? {
        Some(value) => Ok(Some(value)),
        None => parse::flat_value(content, "inactive_file"),
    }
}

/// Reads every stat this version offers.
pub fn read_full(files: &CgroupFiles, mut report: Report<'_>) -> Result<CgroupStats, Vanished> {
    let mut reader = FileReader {
        report: &mut report,
        missing: false,
    };
    let stats = if files.version == 2 {
        read_full_v2(files, &mut reader)
    } else {
        read_full_v1(files, &mut reader)
    };
    let psi = files.psi.as_deref();
    let stats = CgroupStats {
        pressure_cpu: reader.parsed(psi, "cpu.pressure", parse::pressure),
        pressure_memory: reader.parsed(psi, "memory.pressure", parse::pressure),
        pressure_io: reader.parsed(psi, "io.pressure", parse::pressure),
        ..stats
    };
    finish(files, &reader, stats)
}

fn read_full_v2(files: &CgroupFiles, reader: &mut FileReader<'_, '_>) -> CgroupStats {
    let dir = files.v2.as_deref();
    let cpu_stat = reader.read(dir, "cpu.stat");
    let mut cpu_field = |key: &str| {
        let content = cpu_stat.as_deref()?;
        match parse::flat_value(content, key) {
            Ok(value) => value,
            Err(error) => {
                (reader.report)("parse", format!("cpu.stat {key}: {error}"));
                None
            }
        }
    };
    let usage_us = cpu_field("usage_usec");
    let user_us = cpu_field("user_usec");
    let system_us = cpu_field("system_usec");
    let periods = cpu_field("nr_periods");
    let throttled = cpu_field("nr_throttled");
    let throttled_us = cpu_field("throttled_usec");

    let memory_stat = reader.read(dir, "memory.stat");
    let mut memory_field = |key: &str| {
        let content = memory_stat.as_deref()?;
        match parse::flat_value(content, key) {
            Ok(value) => value,
            Err(error) => {
                (reader.report)("parse", format!("memory.stat {key}: {error}"));
                None
            }
        }
    };
    let inactive = memory_field("inactive_file");
    let anon = memory_field("anon");
    let file = memory_field("file");
    let usage = reader.parsed(dir, "memory.current", parse::single_u64);
    let events = reader.read(dir, "memory.events");
    let event = |key: &str| {
        events
            .as_deref()
            .and_then(|c| parse::flat_value(c, key).ok().flatten())
    };

    CgroupStats {
        fast: FastSample {
            cpu_usage_seconds: usage_us.map(|us| us as f64 / MICROS),
            memory_usage_bytes: usage,
            memory_working_set_bytes: working_set(usage, inactive),
        },
        cpu_user_seconds: user_us.map(|us| us as f64 / MICROS),
        cpu_system_seconds: system_us.map(|us| us as f64 / MICROS),
        cpu_periods: periods,
        cpu_throttled_periods: throttled,
        cpu_throttled_seconds: throttled_us.map(|us| us as f64 / MICROS),
        cpu_limit_cores: reader.parsed(dir, "cpu.max", parse::cpu_max).flatten(),
        cpu_weight: reader.parsed(dir, "cpu.weight", parse::single_u64),
        memory_rss_bytes: anon,
        memory_cache_bytes: file,
        memory_peak_bytes: reader.parsed(dir, "memory.peak", parse::single_u64),
        memory_limit_bytes: reader
            .parsed(dir, "memory.max", parse::single_u64_or_max)
            .flatten(),
        oom_events: event("oom"),
        oom_kills: event("oom_kill"),
        io: reader.parsed(dir, "io.stat", parse::io_stat),
        ..Default::default()
    }
}

fn read_full_v1(files: &CgroupFiles, reader: &mut FileReader<'_, '_>) -> CgroupStats {
    let cpuacct = files.cpuacct.as_deref();
    let cpu = files.cpu.as_deref();
    let memory = files.memory.as_deref();
    let blkio = files.blkio.as_deref();

    let usage_ns = reader.parsed(cpuacct, "cpuacct.usage", parse::single_u64);
    let cpuacct_stat = reader.read(cpuacct, "cpuacct.stat");
    let ticks = |key: &str| {
        cpuacct_stat
            .as_deref()
            .and_then(|c| parse::flat_value(c, key).ok().flatten())
    };
    let cpu_stat = reader.read(cpu, "cpu.stat");
    let cpu_field = |key: &str| {
        cpu_stat
            .as_deref()
            .and_then(|c| parse::flat_value(c, key).ok().flatten())
    };
    let quota = reader.parsed(cpu, "cpu.cfs_quota_us", parse::single_i64);
    let period = reader.parsed(cpu, "cpu.cfs_period_us", parse::single_u64);

    let usage = reader.parsed(memory, "memory.usage_in_bytes", parse::single_u64);
    let memory_stat = reader.read(memory, "memory.stat");
    let memory_field = |total: &str, local: &str| {
        let content = memory_stat.as_deref()?;
        parse::flat_value(content, total)
            .ok()
            .flatten()
            .or_else(|| parse::flat_value(content, local).ok().flatten())
    };
    let inactive = memory_field("total_inactive_file", "inactive_file");
    let limit = reader
        .parsed(memory, "memory.limit_in_bytes", parse::single_u64)
        .filter(|limit| *limit < V1_UNLIMITED);
    let oom_control = reader.read(memory, "memory.oom_control");

    let service_bytes = reader
        .parsed(
            blkio,
            "blkio.throttle.io_service_bytes_recursive",
            parse::blkio_read_write,
        )
        .or_else(|| {
            reader.parsed(
                blkio,
                "blkio.throttle.io_service_bytes",
                parse::blkio_read_write,
            )
        });
    let serviced = reader
        .parsed(
            blkio,
            "blkio.throttle.io_serviced_recursive",
            parse::blkio_read_write,
        )
        .or_else(|| reader.parsed(blkio, "blkio.throttle.io_serviced", parse::blkio_read_write));
    let io = match (service_bytes, serviced) {
        (None, None) => None,
        (bytes, ops) => {
            let (read_bytes, write_bytes) = bytes.unwrap_or_default();
            let (reads, writes) = ops.unwrap_or_default();
            Some(IoTotals {
                read_bytes,
                write_bytes,
                reads,
                writes,
            })
        }
    };

    CgroupStats {
        fast: FastSample {
            cpu_usage_seconds: usage_ns.map(|ns| ns as f64 / NANOS),
            memory_usage_bytes: usage,
            memory_working_set_bytes: working_set(usage, inactive),
        },
        cpu_user_seconds: ticks("user").map(|t| t as f64 / USER_HZ),
        cpu_system_seconds: ticks("system").map(|t| t as f64 / USER_HZ),
        cpu_periods: cpu_field("nr_periods"),
        cpu_throttled_periods: cpu_field("nr_throttled"),
        cpu_throttled_seconds: cpu_field("throttled_time").map(|ns| ns as f64 / NANOS),
        cpu_limit_cores: match (quota, period) {
            (Some(quota), Some(period)) => parse::cfs_limit(quota, period),
            _ => None,
        },
        cpu_weight: reader
            .parsed(cpu, "cpu.shares", parse::single_u64)
            .map(parse::shares_to_weight),
        memory_rss_bytes: memory_field("total_rss", "rss"),
        memory_cache_bytes: memory_field("total_cache", "cache"),
        memory_peak_bytes: reader.parsed(memory, "memory.max_usage_in_bytes", parse::single_u64),
        memory_limit_bytes: limit,
        oom_events: None,
        oom_kills: oom_control
            .as_deref()
            .and_then(|c| parse::flat_value(c, "oom_kill").ok().flatten()),
        io,
        ..Default::default()
    }
}
