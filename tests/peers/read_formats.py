"""Reads one `tally recommend` output with the standard parser of its
format (json, PyYAML, the csv module, polars for Parquet) and prints the
card ids and savings as JSON, so the Rust test can check every format
holds the same cards."""
import csv
import json
import sys

fmt, path = sys.argv[1], sys.argv[2]
if fmt == "json":
    with open(path) as f:
        rows = [{"id": c["id"], "monthly_savings": c["monthly_savings"]} for c in json.load(f)]
elif fmt == "yaml":
    import yaml

    with open(path) as f:
        rows = [{"id": c["id"], "monthly_savings": c["monthly_savings"]} for c in yaml.safe_load(f)]
elif fmt == "csv":
    with open(path, newline="") as f:
        rows = [{"id": r["id"], "monthly_savings": float(r["monthly_savings"])} for r in csv.DictReader(f)]
elif fmt == "parquet":
    import polars

    frame = polars.read_parquet(path)
    assert frame.schema["monthly_savings"] == polars.Float64, frame.schema
    rows = frame.select(["id", "monthly_savings"]).to_dicts()
else:
    sys.exit(f"unknown format {fmt}")
print(json.dumps(rows))
