#!/usr/bin/env python3
"""Tally's Grafana dashboards: the panels below are the source of truth.

    python3 dashboards/generate.py          # writes dashboards/*.json
    python3 dashboards/generate.py --check  # fails on a stale file or a lint finding

The lint requires:
- a description and a unit on every panel;
- the templated datasource on every panel and query;
- unique panel ids;
- a query on every panel;
- that every metric a query names exists: in the agent's catalog
  (docs/metrics.md), among the collector's own families (its source), or
  among the recording rules in dashboards/alerts.
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Billable destination classes, as the egress alert and the analyzer count them.
BILLABLE = "cross_zone|cross_region|internet|private_unmapped"


def variable_datasource():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
    }


def variable(name, label, query):
    """A multi-value label variable; "All" matches series without the label."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "description": f"{label} to show; All matches every value, and series without the label.",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
        "hide": 0,
    }


CLUSTER = variable("cluster", "Cluster", "label_values(tally_node_info, cluster)")
NODE = variable("node", "Node", 'label_values(tally_node_info{cluster=~"$cluster"}, node)')
NAMESPACE = variable(
    "namespace", "Namespace", 'label_values(tally_container_info{cluster=~"$cluster"}, namespace)'
)
MODEL = variable("model", "Model", 'label_values(tally_model_info{cluster=~"$cluster"}, model)')


def panel(kind, title, description, unit, queries, width=12, height=8, **options):
    """A panel; queries are (expr, legend) pairs."""
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(queries)
        ],
        "_size": (width, height),
    }


def stat(title, description, unit, expr, width=6):
    return panel("stat", title, description, unit, [(expr, "")], width=width, height=4,
                 reduceOptions={"calcs": ["lastNotNull"], "fields": "", "values": False})


def series(title, description, unit, queries, width=12, height=8):
    return panel("timeseries", title, description, unit, queries, width=width, height=height,
                 legend={"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                 tooltip={"mode": "multi", "sort": "desc"})


def bars(title, description, unit, expr, legend, width=12, height=8):
    return panel("bargauge", title, description, unit, [(expr, legend)], width=width, height=height,
                 orientation="horizontal", displayMode="basic",
                 reduceOptions={"calcs": ["lastNotNull"], "fields": "", "values": False})


def table(title, description, unit, expr, width=24, height=8):
    return panel("table", title, description, unit, [(expr, "")], width=width, height=height,
                 showHeader=True, sortBy=[{"displayName": "Value", "desc": True}])


def dashboard(uid, title, description, variables, panels, tags):
    """Lays the panels out left to right in Grafana's 24-column grid."""
    x = y = row_height = 0
    laid = []
    for i, p in enumerate(panels, start=1):
        width, height = p.pop("_size")
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        p = {"id": i, "gridPos": {"x": x, "y": y, "w": width, "h": height}, **p}
        laid.append(p)
        x += width
        row_height = max(row_height, height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["tally", *tags],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "templating": {"list": [variable_datasource(), *variables]},
        "annotations": {"list": []},
        "links": [],
        "panels": laid,
    }


def cost():
    c = 'cluster=~"$cluster"'
    return dashboard(
        "tally-cost", "Tally / Cost overview",
        "What the fleet costs by namespace, workload, node, GPU model and model service, the idle share, and what Tally's recommendations would save.",
        [CLUSTER, NAMESPACE, NODE],
        [
            stat("Fleet $/hour", "Sum of every node's hourly price (on-demand, spot or committed, as priced by the analyzer).", "currencyUSD",
                 f"sum(tally_node_cost_hourly{{{c}}})"),
            stat("Fleet $/month", "The month's cost at the analysis window's rate, all namespaces including idle capacity.", "currencyUSD",
                 f'sum(tally_cost_monthly{{{c}, level="namespace"}})'),
            stat("Idle $/month", "Capacity no container requested or used: the __idle__ share of the nodes' price.", "currencyUSD",
                 f"sum(tally_node_idle_cost_monthly{{{c}}})"),
            stat("Savings $/month", "What the recommendations save, overlapping cards counted once (tally recommend lists them).", "currencyUSD",
                 f"max(tally_savings_total_monthly{{{c}}})"),
            bars("Cost by namespace", "Monthly cost per namespace; __idle__ is unallocated capacity.", "currencyUSD",
                 f'sort_desc(sum by (key) (tally_cost_monthly{{{c}, level="namespace", key=~"$namespace|__idle__"}}))', "{{key}}"),
            bars("Top workloads", "The 15 most expensive workloads a month (namespace/kind/name).", "currencyUSD",
                 f'topk(15, tally_cost_monthly{{{c}, level="workload"}})', "{{key}}"),
            bars("Cost by node", "Each node's hourly price, with its instance type and capacity type.", "currencyUSD",
                 f'sort_desc(tally_node_cost_hourly{{{c}, node=~"$node"}})', "{{node}} {{instance_type}} {{capacity_type}}", width=8),
            bars("GPU cost by model", "Monthly cost of the GPUs (and MIG instances) by GPU model.", "currencyUSD",
                 f"sort_desc(sum by (gpu_model) (tally_gpu_cost_monthly{{{c}}}))", "{{gpu_model}}", width=8),
            bars("Cost by model service", "Monthly cost of each served model's pods.", "currencyUSD",
                 f'sort_desc(tally_cost_monthly{{{c}, level="model"}})', "{{key}}", width=8),
            series("Fleet cost trend", "The fleet's hourly price and its idle share over time.", "currencyUSD", [
                (f"sum(tally_node_cost_hourly{{{c}}})", "fleet $/hour"),
                (f"sum(tally_node_idle_cost_monthly{{{c}}}) / 730", "idle $/hour"),
            ], width=12),
            bars("Potential savings by kind", "Savings a month by recommendation kind (each card counted; the headline de-duplicates).", "currencyUSD",
                 f'sort_desc(sum by (kind) (tally_savings_potential_monthly{{{c}, namespace=~"$namespace"}}))', "{{kind}}", width=12),
        ],
        ["cost"],
    )


def gpu():
    g = 'cluster=~"$cluster", node=~"$node"'
    return dashboard(
        "tally-gpu", "Tally / GPU fleet",
        "Every GPU and MIG instance: utilization with the pods on it, memory, power, energy, temperature and throttling; idle and warm-idle GPUs with the money they burn; MIG instances; XID and ECC events.",
        [CLUSTER, NODE, NAMESPACE],
        [
            stat("GPUs", "GPUs and MIG instances reporting.", "none", f"count(tally_gpu_memory_total_bytes{{{g}}})"),
            stat("Idle while allocated", "Devices held by a container but under 5 % utilization now (the alert waits 30 minutes).", "none",
                 f"count((tally_gpu_utilization_ratio{{{g}}} < 0.05) and on (node, gpu_uuid, mig_instance) tally:gpu_allocated == 1) or vector(0)"),
            stat("Idle GPUs $/hour", "What the devices idle while allocated cost an hour.", "currencyUSD",
                 f"sum(tally_gpu_cost_monthly{{{g}}} and on (node, gpu_uuid) ((tally_gpu_utilization_ratio{{{g}}} < 0.05) and on (node, gpu_uuid, mig_instance) tally:gpu_allocated == 1)) / 730 or vector(0)"),
            stat("Fleet GPU utilization", "Mean utilization of all GPUs.", "percentunit", f"avg(tally_gpu_utilization_ratio{{{g}}})"),
            stat("Warm idle", "Devices under 5 % utilization that hold over 10 % of their memory: a model or notebook loaded and left waiting.", "none",
                 f"count((tally_gpu_utilization_ratio{{{g}}} < 0.05) and on (node, gpu_uuid, mig_instance) (tally_gpu_memory_used_bytes{{{g}}} / tally_gpu_memory_total_bytes{{{g}}} > 0.1)) or vector(0)",
                 width=6),
            bars("$ burned by idle devices", "Each device idle while a container holds it, with what it costs an hour (the collector's GPU cost) and who holds it.", "currencyUSD",
                 f"sum by (node, gpu_uuid, gpu_model, holders) (tally_gpu_cost_monthly{{{g}}} and on (node, gpu_uuid) ((tally_gpu_utilization_ratio{{{g}}} < 0.05) and on (node, gpu_uuid, mig_instance) tally:gpu_allocated == 1)) / 730",
                 "{{node}} {{gpu_model}} {{gpu_uuid}} ({{holders}})", width=18),
            series("Utilization per GPU", "Share of time the GPU ran kernels.", "percentunit", [
                (f"tally_gpu_utilization_ratio{{{g}}}", "{{node}} GPU {{gpu_index}} {{mig_profile}}"),
            ]),
            series("Utilization per pod", "Each container's share of its GPU (per-process attribution; MIG and time-sliced shares included).", "percentunit", [
                (f'tally_container_gpu_utilization_ratio{{{g}, namespace=~"$namespace"}}', "{{namespace}}/{{pod}} on {{node}} GPU {{gpu_index}}"),
            ]),
            series("Memory used", "Framebuffer in use per GPU or MIG instance.", "bytes", [
                (f"tally_gpu_memory_used_bytes{{{g}}}", "{{node}} GPU {{gpu_index}} {{mig_profile}}"),
            ]),
            series("Memory used per pod", "Framebuffer held by each container.", "bytes", [
                (f'tally_container_gpu_memory_used_bytes{{{g}, namespace=~"$namespace"}}', "{{namespace}}/{{pod}}"),
            ]),
            series("Power", "Board power draw.", "watt", [(f"tally_gpu_power_watts{{{g}}}", "{{node}} GPU {{gpu_index}}")], width=8),
            series("Energy rate", "Energy per second from the energy counter (equals the mean power).", "watt", [
                (f"rate(tally_gpu_energy_joules_total{{{g}}}[5m])", "{{node}} GPU {{gpu_index}}"),
            ], width=8),
            series("Temperature", "GPU die temperature.", "celsius", [(f"tally_gpu_temperature_celsius{{{g}}}", "{{node}} GPU {{gpu_index}}")], width=8),
            series("Throttling", "GPUs whose clocks are held down, by NVML throttle reason (gpu_idle, the idle clocks, is left out: it is not a problem).", "none", [
                (f'sum by (reason) (tally_gpu_throttled{{{g}, reason!="gpu_idle"}})', "{{reason}}"),
            ]),
            series("XID and ECC events", "XID events and uncorrected ECC errors an hour.", "none", [
                (f'sum by (node, gpu_index, xid) (increase(tally_gpu_events_total{{{g}, kind="xid"}}[1h]))', "{{node}} GPU {{gpu_index}} XID {{xid}}"),
                (f'sum by (node, gpu_index) (increase(tally_gpu_ecc_errors_total{{{g}, type="uncorrected"}}[1h]))', "{{node}} GPU {{gpu_index}} uncorrected ECC"),
            ]),
            table("MIG instances", "Every MIG instance with its memory in use.", "bytes",
                  f'tally_gpu_memory_used_bytes{{{g}, mig_instance!=""}}'),
        ],
        ["gpu"],
    )


def rightsizing():
    w = 'cluster=~"$cluster", namespace=~"$namespace"'
    return dashboard(
        "tally-rightsizing", "Tally / Right-sizing",
        "Requests against usage per workload, the right-sizing recommendations with their savings, OOM kills and CPU throttling.",
        [CLUSTER, NAMESPACE],
        [
            series("CPU requested vs used", "Requested cores against cores used, per workload.", "none", [
                (f'sum by (namespace, workload_name) (tally_container_resource_requests{{{w}, resource="cpu"}})', "{{namespace}}/{{workload_name}} requested"),
                (f"sum by (namespace, workload_name) (rate(tally_container_cpu_usage_seconds_total{{{w}}}[5m]))", "{{namespace}}/{{workload_name}} used"),
            ]),
            series("Memory requested vs working set", "Requested bytes against the working set, per workload.", "bytes", [
                (f'sum by (namespace, workload_name) (tally_container_resource_requests{{{w}, resource="memory"}})', "{{namespace}}/{{workload_name}} requested"),
                (f"sum by (namespace, workload_name) (tally_container_memory_working_set_bytes{{{w}}})", "{{namespace}}/{{workload_name}} working set"),
            ]),
            table("Right-sizing recommendations", "CPU and memory request cards with their savings a month (tally recommend --kind cpu_request,memory_request --patch prints the changes).",
                  "currencyUSD", f'sort_desc(tally_savings_potential_monthly{{{w}, kind=~"cpu_request|memory_request"}})'),
            series("OOM kills", "Processes the OOM killer ended, per container, an hour.", "none", [
                (f"increase(tally_container_memory_oom_kills_total{{{w}}}[1h]) > 0", "{{namespace}}/{{pod}} {{container}}"),
            ]),
            series("CPU throttling", "Share of CFS periods throttled by the CPU limit.", "percentunit", [
                (f"tally:container_cpu_throttled:ratio_rate5m{{{w}}}", "{{namespace}}/{{pod}} {{container}}"),
            ]),
            bars("Efficiency by namespace", "Cost-weighted efficiency over CPU, memory, GPU compute and GPU memory.", "percentunit",
                 f'sort(tally_efficiency_ratio{{{w}}})', "{{namespace}}"),
        ],
        ["rightsizing"],
    )


def latency_vs_objective(m, latency, title, description):
    """A service's p95 of one latency beside its objective."""
    by = "max by (namespace, workload_name, model)"
    return series(title, description, "s", [
        (f'{by} (tally_model_latency_seconds{{{m}, latency="{latency}", quantile="0.95"}})', "{{namespace}}/{{workload_name}} p95"),
        (f'{by} (tally_model_latency_objective_seconds{{{m}, latency="{latency}"}})', "{{namespace}}/{{workload_name}} objective"),
    ])


def serving():
    m = 'cluster=~"$cluster", namespace=~"$namespace", model=~"$model"'
    return dashboard(
        "tally-serving", "Tally / Model serving",
        "Per model service: time to first token, inter-token and end-to-end latency against the objective, throughput, queue, KV cache, errors and $ per 1M tokens.",
        [CLUSTER, NAMESPACE, MODEL],
        [
            latency_vs_objective(m, "ttft", "Time to first token p95 vs objective",
                                 "The worst replica's p95 time to first token over the last 5 minutes (the collector merges the agents' histograms), and the service's objective."),
            latency_vs_objective(m, "itl", "Inter-token latency p95 vs objective",
                                 "The worst replica's p95 time between output tokens over the last 5 minutes, and the service's objective."),
            series("End-to-end latency", "p50 and p95 request latency from arrival to the last token, per service.", "s", [
                (f'max by (namespace, workload_name, model, quantile) (tally_model_latency_seconds{{{m}, latency="e2e"}})', "{{namespace}}/{{workload_name}} p{{quantile}}"),
            ]),
            series("Generated tokens per second", "Output tokens a second per model.", "none", [
                (f"sum by (namespace, model) (rate(tally_model_generation_tokens_total{{{m}}}[5m]))", "{{namespace}} {{model}}"),
            ]),
            series("Prompt tokens per second", "Input tokens a second per model.", "none", [
                (f"sum by (namespace, model) (rate(tally_model_prompt_tokens_total{{{m}}}[5m]))", "{{namespace}} {{model}}"),
            ]),
            series("Queue depth", "Requests waiting for a batch slot.", "none", [
                (f"sum by (namespace, model) (tally_model_requests_waiting{{{m}}})", "{{namespace}} {{model}} waiting"),
                (f"sum by (namespace, model) (tally_model_requests_running{{{m}}})", "{{namespace}} {{model}} running"),
            ]),
            series("KV cache use", "Share of the KV cache in use per pod.", "percentunit", [
                (f"tally_model_kv_cache_usage_ratio{{{m}}}", "{{namespace}}/{{pod}} {{model}}"),
            ]),
            series("Requests per second by outcome", "Finished requests a second, by outcome.", "reqps", [
                (f"sum by (model, outcome) (rate(tally_model_requests_total{{{m}}}[5m]))", "{{model}} {{outcome}}"),
            ]),
            bars("$ per 1M tokens", "What a million tokens cost per model service and direction, at its latency objective.", "currencyUSD",
                 f"tally_model_cost_per_million_tokens{{{m}}}", "{{model}} {{direction}}"),
        ],
        ["serving"],
    )


def egress():
    e = 'cluster=~"$cluster", namespace=~"$namespace"'
    return dashboard(
        "tally-egress", "Tally / Egress",
        "Dollars and bytes by destination class, the top talkers to billable destinations and the cross-zone pairs.",
        [CLUSTER, NAMESPACE],
        [
            bars("Egress $ a month by destination class", "The analyzer's monthly egress bill by destination class, each flow priced by its class and region.", "currencyUSD",
                 f'sum by (class) (tally_egress_cost_monthly{{cluster=~"$cluster"}})', "{{class}}"),
            bars("Egress $ a month by workload", "The ten sending workloads with the largest egress bill.", "currencyUSD",
                 f"topk(10, tally_workload_egress_cost_monthly{{{e}}})", "{{namespace}}/{{workload_name}}"),
            series("Sent by destination class", "Bytes a second pods send, by destination class.", "Bps", [
                (f"sum by (destination_class) (rate(tally_pod_network_transmit_bytes_total{{{e}}}[5m]))", "{{destination_class}}"),
            ]),
            series("Received by destination class", "Bytes a second pods receive, by the class of their peer.", "Bps", [
                (f"sum by (destination_class) (rate(tally_pod_network_receive_bytes_total{{{e}}}[5m]))", "{{destination_class}}"),
            ]),
            bars("Top talkers to billable destinations", "Workloads sending the most to cross-zone, cross-region, internet and unplaced private addresses.", "Bps",
                 f"topk(10, tally:workload_egress_bytes:rate5m{{{e}}})", "{{namespace}}/{{workload_name}} {{destination_class}}"),
            bars("Cross-zone pairs", "Workload pairs exchanging the most bytes across zones (charged on both sides).", "Bps",
                 f'topk(10, sum by (namespace, workload_name, destination_namespace, destination_workload) (rate(tally_pod_network_transmit_bytes_total{{{e}, destination_class="cross_zone"}}[5m])))',
                 "{{namespace}}/{{workload_name}} → {{destination_namespace}}/{{destination_workload}}"),
        ],
        ["egress"],
    )


def itself():
    return dashboard(
        "tally-self", "Tally / Tally itself",
        "The agents and the collector: targets up, sources up and their collection time, spool, export outcomes, errors, ingest rate and store size.",
        [CLUSTER, NODE],
        [
            stat("Agents up", "Agents Prometheus scrapes successfully.", "none", 'sum(up{job="tally-agent"})'),
            stat("Series in the collector", "Series the collector's store holds.", "none", "max(tally_collector_series)"),
            stat("Store size", "The collector's estimate of its store's memory.", "bytes", "max(tally_collector_store_bytes)"),
            stat("Ingest rate", "Samples the collector applies a second.", "none", "sum(rate(tally_collector_samples_total[5m]))"),
            series("Sources down", "Sources whose last collection failed, per node.", "none", [
                ('tally_agent_source_up{cluster=~"$cluster", node=~"$node"} == 0', "{{node}} {{source}}"),
            ]),
            series("Collection time p95", "95th percentile of each source's collection time.", "s", [
                ('histogram_quantile(0.95, sum by (source, le) (rate(tally_agent_source_collection_duration_seconds_bucket{cluster=~"$cluster", node=~"$node"}[5m])))', "{{source}}"),
            ]),
            series("Source errors", "Errors a second by source and kind (each kind is logged once).", "none", [
                ('sum by (source, kind) (rate(tally_agent_source_errors_total{cluster=~"$cluster", node=~"$node"}[5m]))', "{{source}} {{kind}}"),
            ]),
            series("Exports by outcome", "OTLP exports a second by outcome.", "none", [
                ('sum by (outcome) (rate(tally_agent_otlp_exports_total{cluster=~"$cluster", node=~"$node"}[5m]))', "{{outcome}}"),
            ]),
            series("Spool", "Bytes waiting in each agent's disk spool, against its bound.", "bytes", [
                ('tally_agent_spool_size_bytes{cluster=~"$cluster", node=~"$node"}', "{{node}}"),
                ('max(tally_agent_spool_limit_bytes{cluster=~"$cluster", node=~"$node"})', "bound"),
            ]),
            series("Collector rejections", "Points the collector rejected a second, and write-ahead log errors.", "none", [
                ("rate(tally_collector_rejected_points_total[5m])", "rejected points"),
                ("rate(tally_collector_wal_errors_total[5m])", "WAL errors"),
            ]),
        ],
        ["self"],
    )


DASHBOARDS = {
    "cost.json": cost,
    "gpu.json": gpu,
    "rightsizing.json": rightsizing,
    "serving.json": serving,
    "egress.json": egress,
    "tally.json": itself,
}


def known_metrics():
    """Every name a query may use."""
    names = {"up"}
    catalog = (ROOT / "docs/metrics.md").read_text()
    for name, kind in re.findall(r"^\| `(tally_[a-z0-9_]+)` \| ([a-z ()]+) \|", catalog, re.M):
        names.add(name)
        if "histogram" in kind:
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    for path in (ROOT / "collector/src").rglob("*.rs"):
        text = path.read_text()
        # Families the analysis writes by name, and the collector's own
        # page, written as exposition text.
        names.update(re.findall(r'"(tally_[a-z0-9_]+)"', text))
        for name, kind in re.findall(r"# TYPE (tally_[a-z0-9_]+) ([a-z]+)", text):
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    for path in (ROOT / "dashboards/alerts").glob("*.rules.yml"):
        names.update(re.findall(r"record: (tally:[a-z0-9_:]+)", path.read_text()))
    return names


def lint(name, board, names):
    problems = []
    ids = [p["id"] for p in board["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    for p in board["panels"]:
        where = f'{name} panel {p["id"]} "{p["title"]}"'
        if not p.get("description"):
            problems.append(f"{where}: no description")
        if not p["fieldConfig"]["defaults"].get("unit"):
            problems.append(f"{where}: no unit")
        if p.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource is not ${{datasource}}")
        if not p["targets"]:
            problems.append(f"{where}: no query")
        for t in p["targets"]:
            if t.get("datasource") != DATASOURCE:
                problems.append(f"{where}: a query's datasource is not ${{datasource}}")
            expr = re.sub(r'"[^"]*"', '""', t["expr"])  # label values are not names
            for metric in re.findall(r"\b(tally[_:][a-z0-9_:]+|up)\b", expr):
                if metric not in names:
                    problems.append(f"{where}: unknown metric {metric}")
    if "${" in json.dumps(board).replace("${datasource}", ""):
        problems.append(f"{name}: a ${{…}} other than the datasource")
    return problems


def main():
    check = "--check" in sys.argv[1:]
    names = known_metrics()
    problems, stale = [], []
    # The Helm chart packages copies: Helm reads files inside the chart only.
    chart = ROOT / "helm/tally/files"
    outputs = []
    for name, build in DASHBOARDS.items():
        board = build()
        problems += lint(name, board, names)
        text = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        outputs += [(OUT / name, text), (chart / "dashboards" / name, text)]
    rules = (OUT / "alerts/tally.rules.yml").read_text()
    outputs.append((chart / "tally.rules.yml", rules))
    for path, text in outputs:
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for problem in problems:
        print(f"lint: {problem}", file=sys.stderr)
    for name in stale:
        print(f"stale: {name} (run python3 dashboards/generate.py)", file=sys.stderr)
    if problems or stale:
        sys.exit(1)
    print(f"dashboards: {len(DASHBOARDS)} {'checked' if check else 'written'}")


if __name__ == "__main__":
    main()
