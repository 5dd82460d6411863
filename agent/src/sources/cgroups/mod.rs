//! Container metrics read straight from cgroup files (v1, v2 and hybrid),
//! for any runtime: no cAdvisor, no runtime API.
//!
//! The source keeps the set of containers found by periodic discovery,
//! samples CPU and memory cheaply every second into per-container
//! exponential histograms, and reads the full stat set at the export
//! interval.

pub mod discovery;
pub mod layout;
pub mod parse;
pub mod reader;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_schema::exphist::ExpHistogram;

use crate::telemetry::SourceHealth;
use discovery::{DiscoveredCgroup, Runtime};
use layout::{Layout, LayoutError};
use reader::{CgroupFiles, CgroupStats, FastHandles};

/// Deepest nesting discovery walks (kubepods.slice/…/container is 4).
const MAX_DEPTH: usize = 12;

/// One container being tracked.
#[derive(Debug)]
pub struct TrackedContainer {
    /// Where it was found and what it is.
    pub cgroup: DiscoveredCgroup,
    files: CgroupFiles,
    /// Latest readings: fast fields every sample, the rest every full read.
    pub stats: CgroupStats,
    /// Per-sample CPU usage in cores since the last export.
    pub cpu_cores: ExpHistogram,
    /// Per-sample working set in bytes since the last export.
    pub working_set: ExpHistogram,
    last_cpu: Option<(Instant, f64)>,
    /// Kept-open files for the 1 s loop; `None` once the descriptor budget
    /// is spent (those containers are read with open + read + close).
    handles: Option<FastHandles>,
}

impl TrackedContainer {
    /// Folds one reading into the histograms: CPU as the rate since the
    /// previous reading, memory as the working set itself.
    fn record(&mut self, now: Instant, fast: &reader::FastSample) {
        if let Some(usage) = fast.cpu_usage_seconds {
            if let Some((then, previous)) = self.last_cpu {
                let elapsed = now.duration_since(then).as_secs_f64();
                if elapsed > 0.0 && usage >= previous {
                    self.cpu_cores.record((usage - previous) / elapsed);
                }
            }
            self.last_cpu = Some((now, usage));
        }
        if let Some(bytes) = fast.memory_working_set_bytes {
            self.working_set.record(bytes as f64);
        }
    }

    /// 1 or 2.
    pub fn cgroup_version(&self) -> u8 {
        self.files.version()
    }
}

/// The cgroup source.
#[derive(Debug)]
pub struct CgroupSource {
    layout: Layout,
    health: Arc<SourceHealth>,
    containers: BTreeMap<String, TrackedContainer>,
    discovery_interval: Duration,
    last_discovery: Option<Instant>,
    by_runtime: BTreeMap<Runtime, u64>,
    /// Containers that may keep handles open, from the open-files limit.
    handle_budget: usize,
}

/// Containers whose fast-path files may stay open: half the soft
/// open-files limit (the rest is for sockets and the spool), at most 4096.
fn handle_budget() -> usize {
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|soft| soft.parse::<usize>().ok())
        .unwrap_or(1024);
    (soft_limit / 2 / FastHandles::FDS).min(4096)
}

impl CgroupSource {
    /// A source over the hierarchies below `root`.
    pub fn new(
        root: &Path,
        discovery_interval: Duration,
        health: Arc<SourceHealth>,
    ) -> Result<Self, LayoutError> {
        Ok(Self::with_layout(
            Layout::detect(root)?,
            discovery_interval,
            health,
        ))
    }

    /// A source over an explicit layout.
    pub fn with_layout(
        layout: Layout,
        discovery_interval: Duration,
        health: Arc<SourceHealth>,
    ) -> Self {
        Self {
            layout,
            health,
            containers: BTreeMap::new(),
            discovery_interval,
            last_discovery: None,
            by_runtime: BTreeMap::new(),
            handle_budget: handle_budget(),
        }
    }

    /// The detected layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Containers currently tracked, keyed by relative cgroup path.
    pub fn containers(&self) -> impl Iterator<Item = &TrackedContainer> {
        self.containers.values()
    }

    /// Containers found by the last discovery, by runtime.
    pub fn discovered_by_runtime(&self) -> &BTreeMap<Runtime, u64> {
        &self.by_runtime
    }

    /// Rediscovers when the interval has passed (or never ran).
    pub fn discover_if_due(&mut self, now: Instant) {
        let due = self
            .last_discovery
            .is_none_or(|last| now.duration_since(last) >= self.discovery_interval);
        if due {
            self.discover(now);
        }
    }

    /// Walks the hierarchy now: new containers are added, gone ones dropped.
    pub fn discover(&mut self, now: Instant) {
        self.last_discovery = Some(now);
        let found = match discovery::discover(self.layout.discovery_root(), MAX_DEPTH) {
            Ok(found) => found,
            Err(error) => {
                self.health.error("discovery", &error);
                return;
            }
        };
        self.by_runtime.clear();
        let mut seen = BTreeMap::new();
        for cgroup in found {
            *self.by_runtime.entry(cgroup.runtime).or_insert(0) += 1;
            seen.insert(cgroup.relative.clone(), cgroup);
        }
        self.containers
            .retain(|relative, _| seen.contains_key(relative));
        let mut with_handles = self
            .containers
            .values()
            .filter(|c| c.handles.is_some())
            .count();
        for (relative, cgroup) in seen {
            if self.containers.contains_key(&relative) {
                continue;
            }
            let handles = (with_handles < self.handle_budget).then(FastHandles::default);
            with_handles += usize::from(handles.is_some());
            self.containers.insert(
                relative.clone(),
                TrackedContainer {
                    files: CgroupFiles::new(&self.layout, &relative),
                    cgroup,
                    stats: CgroupStats::default(),
                    cpu_cores: ExpHistogram::default(),
                    working_set: ExpHistogram::default(),
                    last_cpu: None,
                    handles,
                },
            );
        }
    }

    /// One cheap sample of every container (CPU, memory), folded into the
    /// histograms. Containers whose cgroup vanished are dropped.
    pub fn sample(&mut self, now: Instant) {
        let started = Instant::now();
        let health = &self.health;
        let mut report = |kind: &'static str, message: String| health.error(kind, &message);
        let mut vanished = Vec::new();
        for (relative, container) in &mut self.containers {
            match reader::read_fast(
                &container.files,
                container.handles.as_mut(),
                &container.stats.fast,
                &mut report,
            ) {
                Ok(fast) => {
                    container.record(now, &fast);
                    container.stats.fast = fast;
                }
                Err(reader::Vanished) => vanished.push(relative.clone()),
            }
        }
        for relative in vanished {
            tracing::debug!(cgroup = %relative, "cgroup vanished; dropping it");
            self.containers.remove(&relative);
        }
        self.health.record_success(started.elapsed());
    }

    /// Reads the full stat set of every container; its CPU and memory
    /// readings count as this tick's sample too.
    pub fn collect_full(&mut self, now: Instant) {
        let started = Instant::now();
        let health = &self.health;
        let mut report = |kind: &'static str, message: String| health.error(kind, &message);
        let mut vanished = Vec::new();
        for (relative, container) in &mut self.containers {
            match reader::read_full(&container.files, &mut report) {
                Ok(stats) => {
                    container.record(now, &stats.fast);
                    container.stats = stats;
                }
                Err(reader::Vanished) => vanished.push(relative.clone()),
            }
        }
        for relative in vanished {
            self.containers.remove(&relative);
        }
        self.health.record_success(started.elapsed());
    }

    /// Hands out and resets each container's histograms (at export).
    pub fn take_histograms(&mut self) -> Vec<(DiscoveredCgroup, ExpHistogram, ExpHistogram)> {
        self.containers
            .values_mut()
            .filter(|c| !c.cpu_cores.is_empty() || !c.working_set.is_empty())
            .map(|c| {
                (
                    c.cgroup.clone(),
                    std::mem::take(&mut c.cpu_cores),
                    std::mem::take(&mut c.working_set),
                )
            })
            .collect()
    }
}
