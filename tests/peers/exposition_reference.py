"""Reads exposition pages with the reference parser, Python's
prometheus_client, and prints one JSON line per page for
tests/exposition_differential.rs to compare with the agent's parser.

    exposition_reference.py [--openmetrics] PAGE...

Text pages go through prometheus_client.parser, OpenMetrics pages
(--openmetrics) through prometheus_client.openmetrics.parser. Each line is
{"page": PATH, "families": [{"name", "type", "help", "unit", "samples":
[[name, [[label, value], ...], value, timestamp]]}]} or, where the parser
raises, {"page": PATH, "error": "..."}. Values and timestamps are strings
that Rust's f64 parser reads exactly: repr() of the float, or
"sec.nanoseconds" for an OpenMetrics Timestamp.
"""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.samples import Timestamp


def number(value):
    # The text parser returns int where int() accepts the text; float() of a
    # Python int is correctly rounded, as Rust's parse of the digits is.
    return repr(float(value))


def timestamp(value):
    if value is None:
        return None
    if isinstance(value, Timestamp):
        return f"{value.sec}.{value.nsec:09d}"
    return number(value)


def read(path, parse):
    with open(path, "rb") as page:
        text = page.read().decode("utf-8")
    families = []
    for family in parse(text):
        families.append(
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "unit": family.unit,
                "samples": [
                    [
                        sample.name,
                        [[k, v] for k, v in (sample.labels or {}).items()],
                        number(sample.value),
                        timestamp(sample.timestamp),
                    ]
                    for sample in family.samples
                ],
            }
        )
    return families


def main(arguments):
    parse = text_families
    if arguments[:1] == ["--openmetrics"]:
        parse = openmetrics_families
        arguments = arguments[1:]
    for path in arguments:
        try:
            line = {"page": path, "families": read(path, parse)}
        except Exception as error:  # the parser raises bare ValueErrors
            line = {"page": path, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv[1:])
