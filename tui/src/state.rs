//! The dashboard's state (the Elm "model"): what is shown, how, and the
//! data it is drawn from. Drawing reads it; only `update` changes it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::api::{Part, Snapshot, WorkloadRef};
use crate::table::{self, Filter, Row, Sort};
use crate::theme::{Palette, Thresholds};
use crate::views;

/// The top-level views, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewId {
    Overview,
    Gpus,
    Workloads,
    Recommendations,
    Models,
    Egress,
    Logs,
}

impl ViewId {
    /// Every view, in Tab order.
    pub const ALL: [ViewId; 7] = [
        ViewId::Overview,
        ViewId::Gpus,
        ViewId::Workloads,
        ViewId::Recommendations,
        ViewId::Models,
        ViewId::Egress,
        ViewId::Logs,
    ];

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            ViewId::Overview => "Overview",
            ViewId::Gpus => "Nodes & GPUs",
            ViewId::Workloads => "Workloads",
            ViewId::Recommendations => "Recommendations",
            ViewId::Models => "Models",
            ViewId::Egress => "Egress",
            ViewId::Logs => "Logs",
        }
    }

    /// Its `:` command.
    pub fn command(self) -> &'static str {
        match self {
            ViewId::Overview => "overview",
            ViewId::Gpus => "gpus",
            ViewId::Workloads => "workloads",
            ViewId::Recommendations => "recommendations",
            ViewId::Models => "models",
            ViewId::Egress => "egress",
            ViewId::Logs => "logs",
        }
    }

    /// A `:` command or alias (k9s style: a unique prefix works too).
    pub fn parse(command: &str) -> Option<ViewId> {
        let command = command.trim().to_lowercase();
        let alias = match command.as_str() {
            "nodes" | "node" | "gpu" => Some(ViewId::Gpus),
            "pods" | "wl" => Some(ViewId::Workloads),
            "recs" | "rec" => Some(ViewId::Recommendations),
            "net" => Some(ViewId::Egress),
            _ => None,
        };
        if alias.is_some() || command.is_empty() {
            return alias;
        }
        let mut matches = ViewId::ALL
            .into_iter()
            .filter(|v| v.command().starts_with(&command));
        match (matches.next(), matches.next()) {
            (Some(view), None) => Some(view),
            _ => None,
        }
    }

    fn position(self) -> usize {
        ViewId::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The next view (Tab), wrapping.
    pub fn next(self) -> ViewId {
        ViewId::ALL[(self.position() + 1) % ViewId::ALL.len()]
    }

    /// The previous view (shift-Tab), wrapping.
    pub fn previous(self) -> ViewId {
        ViewId::ALL[(self.position() + ViewId::ALL.len() - 1) % ViewId::ALL.len()]
    }
}

/// A drill-down screen on top of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// One GPU's processes, joined to pods (key: the GPU row's key).
    GpuProcesses { key: String },
    /// A workload's containers over time.
    Workload { workload: WorkloadRef },
    /// One recommendation card.
    Recommendation { id: String },
}

/// Tables the state keeps selection, sort and filter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableId {
    View(ViewId),
    /// The overview's top recommendations.
    OverviewTop,
    /// The nodes panel of the GPUs view.
    Nodes,
    GpuProcesses,
}

/// Input modes: keys go to the mode first, so `q` typed into a filter
/// does not quit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Filter { input: String },
    Command { input: String },
    Sort { cursor: usize },
    Help,
}

/// The collector connection as the header shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Connected {
        /// Unix seconds of the first successful read after a failure.
        since: f64,
    },
    Retrying {
        error: String,
        attempt: u32,
        retry_in_seconds: f64,
    },
    /// 401/403: retrying will not help until the token changes.
    Unauthorized {
        message: String,
    },
}

/// A figure the drawing code remembers for the next key (the page size,
/// the scroll offset): drawing takes `&State`, so it is atomic.
#[derive(Debug, Default)]
pub struct Remembered(AtomicUsize);

impl Remembered {
    /// The value.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Replaces the value.
    pub fn set(&self, value: usize) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl Clone for Remembered {
    fn clone(&self) -> Self {
        Self(AtomicUsize::new(self.get()))
    }
}

/// One table's rows and how they are shown.
#[derive(Debug, Clone, Default)]
pub struct TableState {
    pub rows: Vec<Row>,
    /// Indices into `rows` after filter and sort.
    pub order: Vec<usize>,
    /// Position in `order`.
    pub selected: usize,
    pub sort: Option<Sort>,
    pub filter: Option<Filter>,
    /// Keep the last row selected when new rows arrive at the end (the
    /// logs' tail), unless the user moved up.
    pub follow_tail: bool,
    /// Rows the last frame had room for (PageUp/PageDown).
    pub page: Remembered,
    /// First row drawn in the last frame (scrolling keeps it stable).
    pub offset: Remembered,
}

impl TableState {
    /// Replaces the rows, keeping the selected row (by key) selected.
    pub fn set_rows(&mut self, rows: Vec<Row>) {
        let selected_key = self.selected_row().map(|r| r.key.clone());
        let at_end = self.selected + 1 >= self.order.len();
        self.rows = rows;
        self.arrange();
        if self.follow_tail && at_end {
            self.selected = self.order.len().saturating_sub(1);
            return;
        }
        if let Some(key) = selected_key
            && let Some(position) = self.order.iter().position(|i| self.rows[*i].key == key)
        {
            self.selected = position;
        }
        self.clamp();
    }

    /// Re-applies the filter and the sort.
    pub fn arrange(&mut self) {
        self.order = table::arrange(&self.rows, self.filter.as_ref(), self.sort);
        self.clamp();
    }

    fn clamp(&mut self) {
        self.selected = self.selected.min(self.order.len().saturating_sub(1));
    }

    /// The selected row.
    pub fn selected_row(&self) -> Option<&Row> {
        self.order.get(self.selected).map(|i| &self.rows[*i])
    }

    /// Moves the selection by `delta` rows.
    pub fn step(&mut self, delta: isize) {
        let last = self.order.len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + delta).clamp(0, last.max(0)) as usize;
    }
}

/// Recent values per key, for sparklines (the API serves the latest
/// figure; the dashboard keeps what it has seen).
#[derive(Debug, Clone, Default)]
pub struct Trend {
    values: HashMap<String, VecDeque<f64>>,
}

impl Trend {
    /// How many values a sparkline shows.
    pub const LENGTH: usize = 12;

    /// Appends a value (absent values are skipped, not drawn as 0).
    pub fn push(&mut self, key: &str, value: Option<f64>) {
        let Some(value) = value.filter(|v| v.is_finite()) else {
            return;
        };
        let ring = self.values.entry(key.to_owned()).or_default();
        if ring.len() == Self::LENGTH {
            ring.pop_front();
        }
        ring.push_back(value);
    }

    /// The values for `key`, oldest first.
    pub fn get(&self, key: &str) -> impl Iterator<Item = f64> + '_ {
        self.values.get(key).into_iter().flatten().copied()
    }

    /// Forgets keys no longer present.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.values.retain(|k, _| keep(k));
    }
}

/// A workload's containers over time (the drill-down's chart).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadHistory {
    pub workload: WorkloadRef,
    /// Per pod/container: `(unix seconds, cores)`.
    pub cpu: Vec<(String, Vec<(f64, f64)>)>,
    /// Per pod/container: `(unix seconds, bytes)`.
    pub memory: Vec<(String, Vec<(f64, f64)>)>,
}

/// Server-side log filters (`:logs namespace=web severity=error`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub params: BTreeMap<String, String>,
}

impl LogQuery {
    /// The parameters `/api/v1/logs` accepts.
    pub const KEYS: [&'static str; 5] = ["namespace", "pod", "container", "severity", "text"];

    /// Parses `key=value` words; unknown keys are refused.
    pub fn parse(words: &str) -> Result<Self, String> {
        let mut params = BTreeMap::new();
        for word in words.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("expected key=value, got {word:?}"));
            };
            let key = match key {
                "ns" => "namespace",
                other => other,
            };
            if !Self::KEYS.contains(&key) {
                return Err(format!(
                    "unknown log filter {key:?} (use {})",
                    Self::KEYS.join(", ")
                ));
            }
            params.insert(key.to_owned(), value.to_owned());
        }
        Ok(Self { params })
    }
}

/// Everything the dashboard knows.
#[derive(Debug)]
pub struct State {
    /// The collector's URL, for the header.
    pub collector: String,
    pub palette: Palette,
    pub thresholds: Thresholds,
    /// Seconds between refreshes.
    pub refresh_seconds: f64,
    /// The data on screen.
    pub snapshot: Option<Box<Snapshot>>,
    /// Unix seconds the data on screen arrived.
    pub data_at: Option<f64>,
    /// Newer answers held back while frozen.
    pub held: Vec<(Part, f64)>,
    /// A newer whole snapshot held back while frozen.
    pub held_snapshot: Option<(Box<Snapshot>, f64)>,
    pub frozen: bool,
    pub connection: Connection,
    /// Unix seconds, advanced by ticks (injected so tests are exact).
    pub now: f64,
    pub view: ViewId,
    /// Drill-downs above `view`, innermost last.
    pub details: Vec<Detail>,
    pub mode: Mode,
    pub tables: BTreeMap<TableId, TableState>,
    pub node_cpu: Trend,
    pub node_memory: Trend,
    /// Mean GPU utilization per node.
    pub node_gpu: Trend,
    pub gpu_utilization: Trend,
    pub workload_history: Option<WorkloadHistory>,
    pub log_query: LogQuery,
    /// A one-line message (bad command, filter error), cleared by a key.
    pub message: Option<String>,
    pub quit: bool,
}

impl State {
    /// A fresh state, connecting.
    pub fn new(collector: String, palette: Palette, thresholds: Thresholds, refresh: f64) -> Self {
        let mut tables = BTreeMap::new();
        for view in ViewId::ALL {
            tables.insert(
                TableId::View(view),
                TableState {
                    sort: views::default_sort(TableId::View(view)),
                    follow_tail: view == ViewId::Logs,
                    ..TableState::default()
                },
            );
        }
        for id in [TableId::OverviewTop, TableId::Nodes, TableId::GpuProcesses] {
            tables.insert(
                id,
                TableState {
                    sort: views::default_sort(id),
                    ..TableState::default()
                },
            );
        }
        Self {
            collector,
            palette,
            thresholds,
            refresh_seconds: refresh,
            snapshot: None,
            data_at: None,
            held: Vec::new(),
            held_snapshot: None,
            frozen: false,
            connection: Connection::Connecting,
            now: 0.0,
            view: ViewId::Overview,
            details: Vec::new(),
            mode: Mode::Normal,
            tables,
            node_cpu: Trend::default(),
            node_memory: Trend::default(),
            node_gpu: Trend::default(),
            gpu_utilization: Trend::default(),
            workload_history: None,
            log_query: LogQuery::default(),
            message: None,
            quit: false,
        }
    }

    /// The table that has the keyboard: the innermost screen's.
    pub fn active_table(&self) -> Option<TableId> {
        match self.details.last() {
            Some(Detail::GpuProcesses { .. }) => Some(TableId::GpuProcesses),
            Some(_) => None,
            None if self.view == ViewId::Overview => Some(TableId::OverviewTop),
            None => Some(TableId::View(self.view)),
        }
    }

    /// A table's state.
    pub fn table(&self, id: TableId) -> &TableState {
        static EMPTY: std::sync::OnceLock<TableState> = std::sync::OnceLock::new();
        self.tables
            .get(&id)
            .unwrap_or_else(|| EMPTY.get_or_init(TableState::default))
    }

    /// A table's state, to change.
    pub fn table_mut(&mut self, id: TableId) -> &mut TableState {
        self.tables.entry(id).or_default()
    }

    /// Advances the sparklines from new node or GPU figures.
    fn trends(&mut self, snapshot: &Snapshot, nodes: bool, gpus: bool) {
        if gpus {
            for gpu in &snapshot.gpus.gpus {
                self.gpu_utilization
                    .push(&views::gpus::gpu_key(gpu), gpu.utilization);
            }
            let keys: std::collections::HashSet<String> = snapshot
                .gpus
                .gpus
                .iter()
                .map(views::gpus::gpu_key)
                .collect();
            self.gpu_utilization.retain(|k| keys.contains(k));
            let by_node = views::gpus::gpus_by_node(snapshot);
            for (node, gpus) in &by_node {
                self.node_gpu.push(node, gpus.utilization());
            }
            self.node_gpu.retain(|k| by_node.contains_key(k));
        }
        if nodes {
            for node in &snapshot.nodes.nodes {
                self.node_cpu
                    .push(&node.node, views::gpus::node_cpu_ratio(node));
                self.node_memory
                    .push(&node.node, views::gpus::node_memory_ratio(node));
            }
            let names: std::collections::HashSet<&str> = snapshot
                .nodes
                .nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect();
            self.node_cpu.retain(|k| names.contains(k));
            self.node_memory.retain(|k| names.contains(k));
        }
    }

    /// Takes a whole snapshot: trends advance, every table is rebuilt.
    pub fn accept(&mut self, snapshot: Box<Snapshot>, at: f64) {
        self.trends(&snapshot, true, true);
        self.snapshot = Some(snapshot);
        self.data_at = Some(at);
        self.rebuild();
    }

    /// Takes one endpoint's answer: only the tables drawn from it are
    /// rebuilt.
    pub fn accept_part(&mut self, part: Part, at: f64) {
        let tables = views::tables_of(&part);
        let (nodes, gpus) = (
            matches!(part, Part::Nodes(_)),
            matches!(part, Part::Gpus(_)),
        );
        let mut snapshot = self.snapshot.take().unwrap_or_default();
        snapshot.apply(part);
        self.trends(&snapshot, nodes, gpus);
        self.snapshot = Some(snapshot);
        self.data_at = Some(at);
        self.rebuild_tables(tables);
    }

    /// Applies what freezing held back.
    pub fn release_held(&mut self) {
        if let Some((snapshot, at)) = self.held_snapshot.take() {
            self.accept(snapshot, at);
        }
        for (part, at) in std::mem::take(&mut self.held) {
            self.accept_part(part, at);
        }
    }

    /// Rebuilds every table's rows from the data on screen.
    pub fn rebuild(&mut self) {
        let ids: Vec<TableId> = self.tables.keys().copied().collect();
        self.rebuild_tables(&ids);
    }

    fn rebuild_tables(&mut self, ids: &[TableId]) {
        let Some(snapshot) = self.snapshot.take() else {
            return;
        };
        for id in ids {
            let rows = views::rows(*id, &snapshot, self);
            self.table_mut(*id).set_rows(rows);
        }
        self.snapshot = Some(snapshot);
    }

    /// Seconds since the data on screen arrived.
    pub fn data_age(&self) -> Option<f64> {
        self.data_at.map(|at| (self.now - at).max(0.0))
    }

    /// Whether the data on screen is older than three refreshes (and
    /// half a minute: a large fleet's views take seconds to compute).
    pub fn stale(&self) -> bool {
        self.data_age()
            .is_some_and(|age| age > (3.0 * self.refresh_seconds).max(30.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_take_aliases_and_unique_prefixes() {
        assert_eq!(ViewId::parse("gpus"), Some(ViewId::Gpus));
        assert_eq!(ViewId::parse("nodes"), Some(ViewId::Gpus));
        assert_eq!(ViewId::parse("rec"), Some(ViewId::Recommendations));
        assert_eq!(ViewId::parse("wor"), Some(ViewId::Workloads));
        assert_eq!(ViewId::parse("mo"), Some(ViewId::Models));
        assert_eq!(ViewId::parse("xyz"), None);
        assert_eq!(ViewId::parse(""), None);
    }

    #[test]
    fn tab_order_wraps() {
        assert_eq!(ViewId::Logs.next(), ViewId::Overview);
        assert_eq!(ViewId::Overview.previous(), ViewId::Logs);
    }

    #[test]
    fn log_queries_refuse_unknown_keys() {
        let q = LogQuery::parse("ns=web severity=error").expect("query");
        assert_eq!(q.params["namespace"], "web");
        assert!(LogQuery::parse("colour=red").is_err());
        assert!(LogQuery::parse("web").is_err());
    }

    #[test]
    fn trends_keep_the_newest_values() {
        let mut t = Trend::default();
        for i in 0..20 {
            t.push("n", Some(f64::from(i)));
        }
        t.push("n", None);
        let values: Vec<f64> = t.get("n").collect();
        assert_eq!(values.len(), Trend::LENGTH);
        assert_eq!(values.last(), Some(&19.0));
    }
}
