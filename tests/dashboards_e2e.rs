//! The dashboards and alert rules end to end, with real peers on loopback:
//! a real Prometheus (Debian's) scrapes a real `tally agent`, the
//! collector, and `tally simulate --listen` (the simulated fleet as its
//! agents' pages would show it); the collector is fed the same fleet over
//! OTLP, with four hours of history backfilled so the analyzer has cards.
//!
//! - Every panel query of every dashboard, with its variables set to
//!   "All", must return data through the Prometheus HTTP API.
//! - With the alert rules loaded and a real Alertmanager (Debian's)
//!   behind Prometheus, each planted scenario (an idle GPU, an OOM-looping
//!   pod, a time-to-first-token regression) makes its alert arrive at
//!   Alertmanager's API, and the healthy fleet raises no problem alert
//!   (severity warning or critical). The one info alert,
//!   TallySavingsOpportunity, is not a problem but the analyzer's standing
//!   figure: this fleet runs a p5.48xlarge on demand with no commitment,
//!   worth far more than the $1,000 threshold a month however healthy it
//!   is, so every run must raise it, with the collector's own total in its
//!   summary. The rules' `for:` durations (10 minutes to an hour) are set
//!   to 0 s here so a test can see them fire;
//!   `dashboards/alerts/tally.rules.test.yml` checks them at their real
//!   values with `promtool test rules`.
//!
//! The agent's GPU source replays an NVML recording (no GPU on these
//! machines): a stand-in for NVML only, as the agent's own suites use.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, fixture};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn gpu_fixture(name: &str) -> PathBuf {
    root().join("agent/tests/fixtures/gpu").join(name)
}

/// The peers a run needs, or `None` after a SKIP line.
fn peers(test: &str, alertmanager: bool) -> Option<(PathBuf, Option<PathBuf>)> {
    let prometheus = common::peer("prometheus", test)?;
    let alertmanager = if alertmanager {
        Some(common::peer("prometheus-alertmanager", test)?)
    } else {
        None
    };
    Some((prometheus, alertmanager))
}

/// Everything a run starts; dropped, it stops them all.
struct Stack {
    prometheus: String,
    collector: String,
    alertmanager: Option<String>,
    _processes: Vec<Running>,
    dir: tempfile::TempDir,
}

impl Stack {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Running {
    let log = std::fs::File::create(log).expect("log");
    Running {
        child: command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}")),
        name,
    }
}

fn ready(url: &str, what: &str, dir: &Path, log: &str) {
    assert!(
        common::wait_ready(url, Duration::from_secs(60)),
        "{what} not ready; log: {}",
        std::fs::read_to_string(dir.join(log)).unwrap_or_default()
    );
}

/// Starts the collector, backfills it with `scenario`, then runs the
/// fleet live (OTLP to the collector, its page for Prometheus), a real
/// agent replaying `gpu` and Prometheus with `rules`, and Alertmanager
/// when given.
fn start(
    scenario: &str,
    gpu: &str,
    rules: Option<&Path>,
    prometheus_bin: &Path,
    alertmanager_bin: Option<&Path>,
) -> Stack {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path();
    let tally = env!("CARGO_BIN_EXE_tally");
    let mut processes = Vec::new();

    let collector_port = common::free_port();
    let collector = format!("http://127.0.0.1:{collector_port}");
    processes.push(common::start_collector(
        collector_port,
        &path.join("collector-data"),
        &path.join("collector.log"),
    ));
    ready(
        &format!("{collector}/readyz"),
        "collector",
        path,
        "collector.log",
    );

    // The same fleet twice: history, then live.
    let simulate = || {
        let mut command = Command::new(tally);
        command.args(["simulate", "--collector", &collector]).args([
            "--nodes",
            "3",
            "--seed",
            "1",
            "--scenario",
            scenario,
        ]);
        command
    };
    // History for the analyzer: right-sizing wants three hours at least.
    let backfill = simulate()
        .args(["--backfill", "4h", "--step", "2m"])
        .output()
        .expect("backfill");
    assert!(
        backfill.status.success(),
        "backfill: {}",
        String::from_utf8_lossy(&backfill.stderr)
    );

    let fleet_port = common::free_port();
    processes.push(spawn(
        "tally simulate",
        simulate()
            .args(["--step", "1s", "--listen"])
            .arg(format!("127.0.0.1:{fleet_port}")),
        &path.join("simulate.log"),
    ));
    ready(
        &format!("http://127.0.0.1:{fleet_port}/readyz"),
        "simulated fleet",
        path,
        "simulate.log",
    );

    let cgroups = path.join("cgroup");
    fixture::write_tree(&cgroups);
    let agent_port = common::free_port();
    let spool = path.join("spool");
    processes.push(common::start_agent(
        &[
            "--listen",
            &format!("127.0.0.1:{agent_port}"),
            "--collector",
            &collector,
        ],
        &[
            ("TALLY_CGROUPS_ROOT", cgroups.to_str().expect("utf8")),
            ("TALLY_SAMPLING_INTERVAL", "500ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "1s"),
            ("TALLY_SPOOL_DIR", spool.to_str().expect("utf8")),
            ("TALLY_GPU_MODE", "replay"),
            (
                "TALLY_GPU_REPLAY_FILE",
                gpu_fixture(gpu).to_str().expect("utf8"),
            ),
        ],
        &path.join("agent.log"),
    ));
    ready(
        &format!("http://127.0.0.1:{agent_port}/readyz"),
        "agent",
        path,
        "agent.log",
    );

    let alertmanager = alertmanager_bin.map(|binary| {
        let port = common::free_port();
        let config = path.join("alertmanager.yml");
        // Sent on at once: no grouping delay to wait out.
        std::fs::write(
            &config,
            "route: {receiver: 'null', group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\nreceivers: [{name: 'null'}]\n",
        )
        .expect("alertmanager config");
        processes.push(spawn(
            "alertmanager",
            Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", path.join("am").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address="),
            &path.join("alertmanager.log"),
        ));
        let url = format!("http://127.0.0.1:{port}");
        ready(&format!("{url}/-/ready"), "alertmanager", path, "alertmanager.log");
        url
    });

    let prometheus_port = common::free_port();
    let mut config = String::from("global: {scrape_interval: 1s, evaluation_interval: 1s}\n");
    if let Some(rules) = rules {
        config.push_str(&format!("rule_files: ['{}']\n", rules.display()));
    }
    if let Some(url) = &alertmanager {
        config.push_str(&format!(
            "alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{}']}}]}}]}}\n",
            url.trim_start_matches("http://")
        ));
    }
    config.push_str(&format!(
        "scrape_configs:\n  - {{job_name: tally-agent, static_configs: [{{targets: ['127.0.0.1:{agent_port}']}}]}}\n  - {{job_name: tally-simulated-agents, static_configs: [{{targets: ['127.0.0.1:{fleet_port}']}}]}}\n  - {{job_name: tally-collector, static_configs: [{{targets: ['127.0.0.1:{collector_port}']}}]}}\n"
    ));
    std::fs::write(path.join("prometheus.yml"), config).expect("prometheus config");
    processes.push(spawn(
        "prometheus",
        Command::new(prometheus_bin)
            .arg(format!(
                "--config.file={}",
                path.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                path.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .arg("--rules.alert.resend-delay=1s"),
        &path.join("prometheus.log"),
    ));
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");
    ready(
        &format!("{prometheus}/-/ready"),
        "prometheus",
        path,
        "prometheus.log",
    );

    // The analysis of the backfilled history, at once.
    let (status, body) = common::http_post(collector_port, "/api/v1/analyze", &[], b"");
    assert!(
        status == 200 || status == 202,
        "analyze: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Stack {
        prometheus,
        collector,
        alertmanager,
        _processes: processes,
        dir,
    }
}

fn result_count(prometheus: &str, promql: &str) -> usize {
    let answer = common::prom_query(prometheus, promql);
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    answer["data"]["result"].as_array().map_or(0, Vec::len)
}

/// Waits until Prometheus has scraped all three targets, the analysis is
/// on the collector's page, and the fleet has run live for `live`: the
/// data every query and rule needs.
fn settle(stack: &Stack, live: Duration) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let checks = [
        "count(up == 1) == 3",
        "tally_savings_total_monthly",
        "tally_model_latency_seconds",
        "tally_agent_build_info",
    ];
    loop {
        let missing: Vec<&str> = checks
            .iter()
            .copied()
            .filter(|promql| result_count(&stack.prometheus, promql) == 0)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {missing:?}; collector log: {}",
            stack.log("collector.log")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(live);
}

/// Every panel query, the variables set to "All" (`.*`).
fn panel_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(root().join("dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let mut expr = target["expr"].as_str().expect("expr").to_owned();
                for var in ["$cluster", "$namespace", "$node", "$model"] {
                    expr = expr.replace(var, ".*");
                }
                queries.push((
                    name.clone(),
                    panel["title"].as_str().expect("title").to_owned(),
                    expr,
                ));
            }
        }
    }
    queries
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    let Some((prometheus, _)) = peers("every_panel_query_returns_data", false) else {
        return;
    };
    // The demo fleet has every case a panel shows; the recording with MIG,
    // time-slicing and XID events fills the agent's GPU panels.
    let stack = start(
        "demo",
        "documentation-h100-mig-timesliced.json",
        Some(&root().join("dashboards/alerts/tally.rules.yml")),
        &prometheus,
        None,
    );
    settle(&stack, Duration::from_secs(5));
    let queries = panel_queries();
    assert!(queries.len() > 60, "only {} queries", queries.len());
    // Rates need two scrapes of a series and recording rules an
    // evaluation: poll a while before calling a query empty.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut empty: Vec<&(String, String, String)> = queries.iter().collect();
    while !empty.is_empty() && Instant::now() < deadline {
        empty.retain(|(_, _, expr)| result_count(&stack.prometheus, expr) == 0);
        if !empty.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} panel queries returned nothing:\n{}",
        empty.len(),
        queries.len(),
        empty
            .iter()
            .map(|(board, title, expr)| format!("  {board} / {title}: {expr}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{} panel queries over {} returned data",
        queries.len(),
        stack.collector
    );
}

/// The shipped rules with every `for:` set to 0 s (see the module doc).
fn immediate_rules(dir: &Path) -> PathBuf {
    let shipped =
        std::fs::read_to_string(root().join("dashboards/alerts/tally.rules.yml")).expect("rules");
    let mut changed = 0;
    let text: String = shipped
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("for: ") {
                changed += 1;
                format!("{}for: 0s", &line[..line.len() - trimmed.len()])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(changed >= 8, "only {changed} for: clauses");
    let path = dir.join("tally.rules.immediate.yml");
    std::fs::write(&path, text).expect("write rules");
    path
}

/// The alerts at Alertmanager now.
fn alertmanager_alerts(url: &str) -> Vec<Value> {
    let (status, body) = common::http_get(&format!("{url}/api/v2/alerts")).expect("alerts");
    assert_eq!(status, 200, "{body}");
    let alerts: Value = serde_json::from_str(&body).expect("json");
    alerts.as_array().expect("list").clone()
}

/// What reached Alertmanager in a run: every alert name seen over the
/// watch by severity, and the alerts it held at the end.
struct Arrived {
    /// Severity warning or critical.
    problems: BTreeSet<String>,
    /// Severity info.
    info: BTreeSet<String>,
    last: Vec<Value>,
    stack: Stack,
}

/// Runs `scenario` with the immediate rules and Alertmanager.
fn alerts_of(test: &str, scenario: &str) -> Option<Arrived> {
    let (prometheus, alertmanager) = peers(test, true)?;
    let rules_dir = tempfile::tempdir().expect("dir");
    let rules = immediate_rules(rules_dir.path());
    let stack = start(
        scenario,
        "documentation-h100-steady.json",
        Some(&rules),
        &prometheus,
        alertmanager.as_deref(),
    );
    // Twenty seconds of live data: every window of every rule has points.
    settle(&stack, Duration::from_secs(20));
    let url = stack.alertmanager.clone().expect("alertmanager");
    let (mut problems, mut info) = (BTreeSet::new(), BTreeSet::new());
    let mut last = Vec::new();
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(15) {
        last = alertmanager_alerts(&url);
        for alert in &last {
            let name = alert["labels"]["alertname"].as_str().unwrap_or_default();
            match alert["labels"]["severity"].as_str() {
                Some("info") => info.insert(name.to_owned()),
                _ => problems.insert(name.to_owned()),
            };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(rules_dir);
    Some(Arrived {
        problems,
        info,
        last,
        stack,
    })
}

/// Asserts exactly the problem alerts `expected` reached Alertmanager,
/// with the savings figure beside them; returns the alerts.
fn expect_alerts(test: &str, scenario: &str, expected: &[&str]) -> Option<Vec<Value>> {
    let arrived = alerts_of(test, scenario)?;
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    let context = || {
        format!(
            "scenario {scenario}: Prometheus alerts: {}",
            common::prom_query(&arrived.stack.prometheus, "ALERTS")
        )
    };
    assert_eq!(arrived.problems, expected, "{}", context());
    assert_eq!(
        arrived.info,
        BTreeSet::from(["TallySavingsOpportunity".to_owned()]),
        "{}",
        context()
    );
    // The summary states the collector's own de-duplicated total.
    let savings = alert(&arrived.last, "TallySavingsOpportunity");
    let summary = savings["annotations"]["summary"].as_str().expect("summary");
    let stated: f64 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {summary:?}"));
    let (_, page) =
        common::http_get(&format!("{}/metrics", arrived.stack.collector)).expect("metrics");
    let total: f64 = page
        .lines()
        .find_map(|line| line.strip_prefix("tally_savings_total_monthly{currency=\"USD\"} "))
        .and_then(|n| n.parse().ok())
        .expect("savings total");
    assert!(
        (stated - total).abs() <= 0.02 * total + 1.0,
        "{summary} against the collector's {total}"
    );
    Some(arrived.last)
}

/// The one alert named `name` among `alerts`.
fn alert<'a>(alerts: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = alerts
        .iter()
        .filter(|alert| alert["labels"]["alertname"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{name}: {alerts:?}");
    found[0]
}

#[test]
fn a_healthy_fleet_raises_no_problem_alert() {
    let _ = expect_alerts("a_healthy_fleet_raises_no_problem_alert", "healthy", &[]);
}

/// Runs `scenario`, which must raise `name` alone (beside the savings
/// figure), on a series carrying `labels`; returns that alert.
fn expect_one(test: &str, scenario: &str, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
    let alerts = expect_alerts(test, scenario, &[name])?;
    let found = alert(&alerts, name).clone();
    for (label, value) in labels {
        assert_eq!(found["labels"][label], *value, "{label} of {found}");
    }
    Some(found)
}

#[test]
fn an_idle_gpu_alerts_with_its_cost() {
    let Some(idle) = expect_one(
        "an_idle_gpu_alerts_with_its_cost",
        "idle-gpu",
        "TallyGpuIdleWhileAllocated",
        &[("node", "sim-node-0001"), ("severity", "warning")],
    ) else {
        return;
    };
    // The annotation prices the hour from the collector's GPU cost.
    let description = idle["annotations"]["description"].as_str().expect("text");
    let dollars: f64 = description
        .split("burning")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|amount| amount.parse().ok())
        .unwrap_or_else(|| panic!("no $/h in {description:?}"));
    assert!(dollars > 1.0 && dollars < 20.0, "{description}");
}

#[test]
fn an_oom_looping_pod_alerts() {
    expect_one(
        "an_oom_looping_pod_alerts",
        "oom-loop",
        "TallyContainerOomKilled",
        &[("namespace", "batch"), ("workload_name", "etl-leaky")],
    );
}

#[test]
fn a_ttft_regression_alerts() {
    expect_one(
        "a_ttft_regression_alerts",
        "ttft-regression",
        "TallyModelTtftAboveSlo",
        &[("namespace", "inference"), ("workload_name", "qwen-7b-api")],
    );
}
