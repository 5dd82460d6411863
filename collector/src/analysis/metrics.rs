//! The analysis on `/metrics`: costs by namespace, workload, node, GPU
//! and model, idle, and potential savings by kind, namespace and
//! workload, for Grafana and alert rules. With `opencost_metrics` the
//! node and container families are also written under OpenCost's names,
//! so its dashboards work unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tally_analyzer::allocation::IDLE;

use super::{Analysis, Finished};

/// Escapes a label value.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    parts.join(",")
}

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Appends the analyzer's families to `out`.
pub fn render(analysis: &Analysis, out: &mut String) {
    let (runs, errors) = analysis.counts();
    family(
        out,
        "tally_analysis_runs_total",
        "counter",
        "Analyses run, scheduled and on demand.",
    );
    let _ = writeln!(out, "tally_analysis_runs_total {runs}");
    family(
        out,
        "tally_analysis_errors_total",
        "counter",
        "Analyses that failed (logged once each).",
    );
    let _ = writeln!(out, "tally_analysis_errors_total {errors}");
    let warnings = analysis.prices().sanity_check();
    family(
        out,
        "tally_price_warnings",
        "gauge",
        "Prices outside the plausible range of their GPU model (logged at start).",
    );
    let _ = writeln!(out, "tally_price_warnings {}", warnings.len());
    let Some(finished) = analysis.latest() else {
        return;
    };
    render_report(&finished, analysis.config().opencost_metrics, out);
}

fn render_report(finished: &Finished, opencost: bool, out: &mut String) {
    let report = &finished.report;
    let currency = report.currency.as_str();
    family(
        out,
        "tally_analysis_duration_seconds",
        "gauge",
        "Time the newest analysis took, by phase (extract holds the store).",
    );
    let _ = writeln!(
        out,
        "tally_analysis_duration_seconds{{phase=\"extract\"}} {}\ntally_analysis_duration_seconds{{phase=\"analyze\"}} {}",
        finished.extract.as_secs_f64(),
        finished.analyze.as_secs_f64()
    );
    family(
        out,
        "tally_analysis_timestamp_seconds",
        "gauge",
        "When the newest analysis finished.",
    );
    let _ = writeln!(
        out,
        "tally_analysis_timestamp_seconds {}",
        finished.at_ns as f64 / 1e9
    );
    family(
        out,
        "tally_cost_monthly",
        "gauge",
        "Cost a month at the window's rate, by roll-up level and key (namespace __idle__ is unallocated capacity).",
    );
    for (level, lines) in [
        ("namespace", &report.namespaces),
        ("workload", &report.workloads),
        ("model", &report.models),
    ] {
        for line in lines {
            let key = line.key.join("/");
            let _ = writeln!(
                out,
                "tally_cost_monthly{{{}}} {}",
                labels(&[("level", level), ("key", &key), ("currency", currency)]),
                line.total_monthly
            );
        }
    }
    family(
        out,
        "tally_namespace_cost_monthly",
        "gauge",
        "Cost a month of a namespace by resource (cpu, memory, gpu).",
    );
    for line in &report.namespaces {
        let namespace = line.key.first().map(String::as_str).unwrap_or(IDLE);
        for (resource, value) in [
            ("cpu", line.cpu_monthly),
            ("memory", line.memory_monthly),
            ("gpu", line.gpu_monthly),
        ] {
            let _ = writeln!(
                out,
                "tally_namespace_cost_monthly{{{}}} {value}",
                labels(&[
                    ("namespace", namespace),
                    ("resource", resource),
                    ("currency", currency)
                ])
            );
        }
    }
    family(
        out,
        "tally_efficiency_ratio",
        "gauge",
        "Cost-weighted efficiency over CPU, memory, GPU compute and GPU memory, by namespace.",
    );
    for line in report
        .namespaces
        .iter()
        .filter(|l| l.key.first().is_some_and(|k| k != IDLE))
    {
        let _ = writeln!(
            out,
            "tally_efficiency_ratio{{{}}} {}",
            labels(&[("namespace", &line.key[0])]),
            line.efficiency
        );
    }
    family(
        out,
        "tally_node_cost_hourly",
        "gauge",
        "Price of a node per hour and where it came from (catalog, gpu_model, default, override).",
    );
    family(
        out,
        "tally_node_idle_cost_monthly",
        "gauge",
        "Capacity of a node nobody was allocated, a month.",
    );
    let factor = report.allocation.monthly_factor();
    let mut idle = String::new();
    for node in &report.allocation.nodes {
        let source = node.price.source.as_str();
        let _ = writeln!(
            out,
            "tally_node_cost_hourly{{{}}} {}",
            labels(&[
                ("node", &node.node),
                ("instance_type", &node.instance_type),
                ("capacity_type", &node.capacity_type),
                ("price_source", source),
                ("currency", currency),
            ]),
            node.price.hourly
        );
        let _ = writeln!(
            idle,
            "tally_node_idle_cost_monthly{{{}}} {}",
            labels(&[("node", &node.node), ("currency", currency)]),
            node.idle() * factor
        );
    }
    out.push_str(&idle);
    family(
        out,
        "tally_savings_potential_monthly",
        "gauge",
        "Savings a month of the current recommendations, by kind and workload (overlapping cards counted once).",
    );
    let mut savings: BTreeMap<(String, String, String, String), f64> = BTreeMap::new();
    for card in &report.recommendations {
        *savings
            .entry((
                card.kind.as_str().to_owned(),
                card.workload.namespace.clone(),
                card.workload.kind.clone(),
                card.workload.name.clone(),
            ))
            .or_default() += card.monthly_savings;
    }
    for ((kind, namespace, workload_kind, workload_name), value) in savings {
        let _ = writeln!(
            out,
            "tally_savings_potential_monthly{{{}}} {value}",
            labels(&[
                ("kind", &kind),
                ("namespace", &namespace),
                ("workload_kind", &workload_kind),
                ("workload_name", &workload_name),
                ("currency", currency),
            ])
        );
    }
    family(
        out,
        "tally_gpu_cost_monthly",
        "gauge",
        "Cost a month of a GPU or MIG instance (its slices' share of the GPU's price) and how many containers held it (0: idle).",
    );
    for device in &report.allocation.devices {
        let users = device.users.to_string();
        let _ = writeln!(
            out,
            "tally_gpu_cost_monthly{{{}}} {}",
            labels(&[
                ("node", &device.node),
                ("gpu_uuid", &device.gpu_uuid),
                ("gpu_model", &device.gpu_model),
                ("mig_profile", device.mig_profile.as_deref().unwrap_or("")),
                ("holders", &users),
                ("currency", currency),
            ]),
            device.cost * factor
        );
    }
    family(
        out,
        "tally_model_cost_per_million_tokens",
        "gauge",
        "Cost of a model service per 1M tokens (direction all, input or output; split by prefill and decode time).",
    );
    for service in &report.inference {
        for (direction, value) in [
            ("all", service.per_million_tokens),
            ("input", service.per_million_input),
            ("output", service.per_million_output),
        ] {
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "tally_model_cost_per_million_tokens{{{}}} {value}",
                    labels(&[
                        ("namespace", &service.workload.namespace),
                        ("workload_name", &service.workload.name),
                        ("model", &service.model),
                        ("direction", direction),
                        ("currency", currency),
                    ])
                );
            }
        }
    }
    family(
        out,
        "tally_egress_cost_monthly",
        "gauge",
        "Egress a month by destination class (0 for free classes), priced per flow.",
    );
    for (class, cost) in &report.egress.by_class {
        let _ = writeln!(
            out,
            "tally_egress_cost_monthly{{{}}} {cost}",
            labels(&[("class", class), ("currency", currency)])
        );
    }
    family(
        out,
        "tally_workload_egress_cost_monthly",
        "gauge",
        "Egress a month by sending workload (workloads with a bill only).",
    );
    for line in &report.egress.by_workload {
        let _ = writeln!(
            out,
            "tally_workload_egress_cost_monthly{{{}}} {}",
            labels(&[
                ("namespace", &line.workload.namespace),
                ("workload_kind", &line.workload.kind),
                ("workload_name", &line.workload.name),
                ("currency", currency),
            ]),
            line.monthly_cost
        );
    }
    family(
        out,
        "tally_realizable_savings_monthly",
        "gauge",
        "What the request cards realize: CPU node pools packed again, nodes no longer needed × their price.",
    );
    let _ = writeln!(
        out,
        "tally_realizable_savings_monthly{{{}}} {}",
        labels(&[("currency", currency)]),
        report.totals.realizable_monthly_savings
    );
    family(
        out,
        "tally_savings_total_monthly",
        "gauge",
        "All savings a month, overlapping cards counted once.",
    );
    let _ = writeln!(
        out,
        "tally_savings_total_monthly{{{}}} {}",
        labels(&[("currency", currency)]),
        report.totals.monthly_savings
    );
    if opencost {
        render_opencost(finished, out);
    }
}

/// OpenCost's exported gauges (reference §3), from the same allocation.
fn render_opencost(finished: &Finished, out: &mut String) {
    let allocation = &finished.report.allocation;
    for (name, help) in [
        ("node_cpu_hourly_cost", "Hourly cost per vCPU on this node."),
        (
            "node_ram_hourly_cost",
            "Hourly cost per GiB of memory on this node.",
        ),
        ("node_gpu_hourly_cost", "Hourly cost per GPU on this node."),
        ("node_total_hourly_cost", "Total node cost per hour."),
        ("kubecost_node_is_spot", "1 when the node is preemptible."),
    ] {
        family(out, name, "gauge", help);
        for node in &allocation.nodes {
            let value = match name {
                "node_cpu_hourly_cost" => node.price.cpu_core_hourly,
                "node_ram_hourly_cost" => node.price.memory_gib_hourly,
                "node_gpu_hourly_cost" => node.price.gpu_hourly,
                "node_total_hourly_cost" => node.price.hourly,
                _ => f64::from(u8::from(node.capacity_type == "spot")),
            };
            let _ = writeln!(
                out,
                "{name}{{{}}} {value}",
                labels(&[("node", &node.node), ("instance_type", &node.instance_type)])
            );
        }
    }
    for (name, help) in [
        ("container_cpu_allocation", "max(request, usage) cores."),
        (
            "container_memory_allocation_bytes",
            "max(request, usage) bytes.",
        ),
        (
            "container_gpu_allocation",
            "GPUs allocated (MIG and time-sliced shares as fractions).",
        ),
    ] {
        family(out, name, "gauge", help);
        for c in &allocation.containers {
            let value = match name {
                "container_cpu_allocation" => c.cpu_cores,
                "container_memory_allocation_bytes" => c.memory_bytes,
                _ => c.gpus,
            };
            let _ = writeln!(
                out,
                "{name}{{{}}} {value}",
                labels(&[
                    ("namespace", &c.workload.namespace),
                    ("pod", &c.pod),
                    ("container", &c.container),
                    ("node", &c.node),
                ])
            );
        }
    }
}
