"""Checks the Helm chart with the real Helm library and the real validators.

Run by tests/helm_chart.rs with the peer venv's Python:
    check_chart.py --chart helm/tally --tally BIN --promtool BIN --out DIR

- helm-python-sdk (Helm v4's Go library) lints the chart strictly and
  renders it offline for each value set below;
- every rendered manifest passes `kubernetes-validate --strict` for two
  Kubernetes versions (CRDs of the Prometheus Operator are not covered by
  it and are checked by hand: apiVersion, kind, spec);
- every workload meets the security properties of docs/install.md;
- RBAC grants exactly the verbs listed there;
- the rendered agent and collector config files load in the real binary;
- the PrometheusRule's groups pass `promtool check rules`, and the
  dashboard ConfigMaps hold the dashboards' JSON;
- values.schema.json refuses bad values and documents every value.

Prints one line per check and exits 1 on the first failure list.
"""

import argparse
import json
import pathlib
import subprocess
import sys

import yaml
from helm_python.chart import Chart, lint

KUBE_VERSIONS = ["1.29.0", "1.33.0"]

VALUE_SETS = {
    "default": {},
    "gpu-nodes-nvml": {
        "agent": {
            "gpu": {"runtimeClassName": "nvidia", "dcgmCompatible": True},
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
        },
    },
    "prometheus-operator": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "savingsThresholdMonthly": 2500},
            "dashboards": {"enabled": True},
        },
    },
    "no-prometheus-operator": {
        "collector": {"networkPolicy": {"enabled": False}, "persistence": {"enabled": False}},
        "agent": {"podAnnotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9470"}},
    },
    "tls-and-ingress": {
        "tls": {"enabled": True, "secretName": "tally-tls"},
        "auth": {"ingestToken": "i" * 40, "readToken": "r" * 40},
        "collector": {"ingress": {"enabled": True, "className": "nginx", "hosts": ["tally.example.com"]}},
    },
    # Agents only: their pages go to an external Prometheus-compatible
    # backend (VictoriaMetrics, Mimir, Thanos) that scrapes them.
    "external-backend-agents-only": {
        "collector": {"enabled": False},
        "agent": {"podAnnotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9470"}},
        "monitoring": {"podMonitor": {"enabled": True}},
    },
    "egress": {"agent": {"egress": {"enabled": True}}},
    # The least the agent can run with: its pods and their names only.
    "minimal-rbac": {"rbac": {"workloadFacts": False}},
}

# Capabilities a container may add, by value set (docs/install.md).
ALLOWED_CAPABILITIES = {"egress": {"NET_ADMIN", "SYS_ADMIN"}}

# The agent's ClusterRole, exactly (docs/install.md says why each); the
# first three rows alone with rbac.workloadFacts false.
AGENT_RULES = [
    ("", "pods", {"get", "list", "watch"}),
    ("", "nodes", {"get", "list"}),
    ("apps", "replicasets", {"get", "list", "watch"}),
    ("apps", "deployments", {"get"}),
    ("apps", "statefulsets", {"get"}),
    ("policy", "poddisruptionbudgets", {"list"}),
    ("autoscaling", "horizontalpodautoscalers", {"list"}),
]

WORKLOAD_KINDS = {"DaemonSet", "Deployment", "StatefulSet"}
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

failures = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def documents(rendered):
    for path, text in rendered.items():
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield path, doc


def check_security(name, doc):
    kind, meta = doc["kind"], doc["metadata"]["name"]
    spec = doc["spec"]["template"]["spec"]
    where = f"{name}: {kind}/{meta}"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        check(not spec.get(key, False), f"{where}: no {key}")
    pod_seccomp = spec.get("securityContext", {}).get("seccompProfile", {}).get("type")
    allowed = ALLOWED_CAPABILITIES.get(name, set())
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        sc = container.get("securityContext", {})
        c = f"{where}/{container['name']}"
        check(sc.get("readOnlyRootFilesystem") is True, f"{c}: read-only root filesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{c}: no privilege escalation")
        check(not sc.get("privileged", False), f"{c}: not privileged")
        caps = sc.get("capabilities", {})
        check(caps.get("drop") == ["ALL"], f"{c}: drops ALL capabilities")
        added = set(caps.get("add", []))
        check(added <= allowed, f"{c}: adds only {sorted(allowed)} (adds {sorted(added)})")
        seccomp = sc.get("seccompProfile", {}).get("type") or pod_seccomp
        check(seccomp == "RuntimeDefault", f"{c}: seccomp RuntimeDefault")
        probes = {p: container.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
        check(probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}, f"{c}: probes on /healthz and /readyz")
        check("requests" in container.get("resources", {}), f"{c}: resource requests")
        check("memory" in container.get("resources", {}).get("limits", {}), f"{c}: a memory limit")
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            mounts = [m for c in spec["containers"] for m in c.get("volumeMounts", []) if m["name"] == volume["name"]]
            writable = [m for m in mounts if not m.get("readOnly")]
            # Only the agent's own state directory is written on the host.
            check(not writable or volume["name"] == "state", f"{where}: hostPath {volume['hostPath']['path']} read-only")
    if kind == "StatefulSet":
        check(spec["securityContext"].get("runAsNonRoot") is True, f"{where}: runs as non-root")
        check(spec.get("automountServiceAccountToken") is False, f"{where}: no API token mounted")


def check_rbac(name, docs):
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    check(len(roles) == 1, f"{name}: the agent's ClusterRole is rendered, and no other role")
    for role in roles:
        granted = sorted(
            (group, resource, frozenset(rule["verbs"]))
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
        )
        rules = AGENT_RULES[:3] if name == "minimal-rbac" else AGENT_RULES
        expected = sorted((g, r, frozenset(v)) for g, r, v in rules)
        check(granted == expected, f"{name}: {role['metadata']['name']} grants exactly the listed verbs")
        flat = json.dumps(role["rules"])
        for forbidden in ("secrets", "nodes/proxy", "create", "update", "patch", "delete", '"*"'):
            check(forbidden not in flat, f"{name}: no {forbidden} in the ClusterRole")


def check_configs(name, docs, tally, out):
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        for key, text in doc.get("data", {}).items():
            if key not in ("agent.yaml", "collector.yaml"):
                continue
            path = out / f"{name}-{key}"
            path.write_text(text)
            command = key.removesuffix(".yaml")
            result = subprocess.run([tally, command, "--config", str(path), "--print-config"], capture_output=True, text=True)
            check(result.returncode == 0, f"{name}: {key} loads in `tally {command}` ({result.stderr.strip()[:200]})")


def check_operator_objects(name, docs, promtool, out):
    for doc in docs:
        kind = doc["kind"]
        if kind in OPERATOR_KINDS:
            check(doc["apiVersion"] == "monitoring.coreos.com/v1" and "spec" in doc, f"{name}: {kind} is monitoring.coreos.com/v1 with a spec")
        if kind == "PrometheusRule":
            rules = out / f"{name}-prometheusrule.yml"
            rules.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
            result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
            check(result.returncode == 0, f"{name}: PrometheusRule passes promtool check rules ({result.stdout.strip()[-200:]})")
            exprs = [r["expr"] for g in doc["spec"]["groups"] for r in g["rules"]]
            check(any("tally_savings_total_monthly > 2500" in e for e in exprs), f"{name}: the savings threshold is the value's")
        if kind == "ConfigMap" and "grafana_dashboard" in doc["metadata"].get("labels", {}):
            for key, text in doc["data"].items():
                board = json.loads(text)
                check(board.get("uid", "").startswith("tally-") and board.get("panels"), f"{name}: {key} is a dashboard's JSON")


def check_schema(chart_dir):
    chart = Chart.load(str(chart_dir))
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())

    def covered(value, node, path):
        if node.get("type") == "object" and "properties" in node and isinstance(value, dict):
            for key, item in value.items():
                child = node["properties"].get(key)
                check(child is not None, f"schema: {path}{key} is described")
                if child is not None:
                    check(bool(child.get("description")), f"schema: {path}{key} has a description")
                    covered(item, child, f"{path}{key}.")

    covered(values, schema, "")
    for bad, why in [
        ({"image": {"pullPolicy": "Sometimes"}}, "an unknown pull policy"),
        ({"agent": {"prot": 9470}}, "a misspelt key"),
        ({"collector": {"replicas": 3}}, "three replicas of an embedded store"),
        ({"agent": {"sampling": {"interval": "fast"}}}, "a duration without a unit"),
    ]:
        try:
            chart.render(values=bad, name="tally", namespace="tally")
            refused = False
        except Exception as error:  # noqa: BLE001 - any refusal counts, its text is shown
            refused = "schema" in str(error).lower() or "values" in str(error).lower()
        check(refused, f"schema: refuses {why}")


def values_reference(chart_dir):
    """The values table of docs/install.md, from values.schema.json and
    the defaults in values.yaml."""
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    rows = ["| Value | Type | Default | Meaning |", "|---|---|---|---|"]

    def walk(node, value, path):
        children = node.get("properties") if node.get("type") == "object" else None
        if children and isinstance(value, dict) and value:
            for key, child in children.items():
                walk(child, value.get(key), f"{path}.{key}" if path else key)
            return
        kind = node.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in node:
            kind += " (" + ", ".join(node["enum"]) + ")"
        default = json.dumps(value) if value not in (None, "", {}, []) else "—"
        rows.append(f"| `{path}` | {kind} | `{default}` | {node.get('description', '')} |")

    walk(schema, values, "")
    return "\n".join(rows) + "\n"


def check_docs(chart_dir, docs_path, write):
    text = docs_path.read_text()
    begin, end = "<!-- values:begin -->\n", "<!-- values:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    current = head + begin + values_reference(chart_dir) + end + tail
    if write:
        docs_path.write_text(current)
    check(current == text, f"{docs_path.name}: the values reference is current (run check_chart.py --write-docs)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chart", required=True)
    parser.add_argument("--tally", required=True)
    parser.add_argument("--promtool", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--docs", help="docs/install.md, whose values reference is checked")
    parser.add_argument("--write-docs", action="store_true", help="rewrite that reference")
    args = parser.parse_args()
    chart_dir = pathlib.Path(args.chart)
    out = pathlib.Path(args.out)
    if args.docs:
        check_docs(chart_dir, pathlib.Path(args.docs), args.write_docs)

    for version in KUBE_VERSIONS:
        report = lint(str(chart_dir), strict=True, kube_version=f"v{version}")
        check(not report["errors"] and not report["messages"], f"helm lint --strict on Kubernetes {version}: {report}")

    chart = Chart.load(str(chart_dir))
    for name, values in VALUE_SETS.items():
        rendered = chart.render(values=values, name="tally", namespace="tally")
        docs = [doc for _, doc in documents(rendered)]
        manifest = out / f"{name}.yaml"
        core = [d for d in docs if d["kind"] not in OPERATOR_KINDS]
        manifest.write_text(yaml.safe_dump_all(core))
        for version in KUBE_VERSIONS:
            result = subprocess.run(
                [str(pathlib.Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", version, "--quiet", str(manifest)],
                capture_output=True,
                text=True,
            )
            check(result.returncode == 0, f"{name}: {len(core)} manifests valid for Kubernetes {version} ({(result.stdout + result.stderr).strip()[:300]})")
        for doc in docs:
            if doc["kind"] in WORKLOAD_KINDS:
                check_security(name, doc)
        check_rbac(name, docs)
        check_configs(name, docs, args.tally, out)
        check_operator_objects(name, docs, args.promtool, out)
        kinds = sorted({d["kind"] for d in docs})
        print(f"     {name}: {len(docs)} objects: {', '.join(kinds)}")

    check_schema(chart_dir)
    if failures:
        print(f"{len(failures)} checks failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
