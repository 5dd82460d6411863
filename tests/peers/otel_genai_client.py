"""The real OpenTelemetry Python SDK recording GenAI metrics (semantic
conventions gen_ai.server.* and gen_ai.client.token.usage) as an
instrumented model server would, pushed over OTLP/HTTP to the collector
given as argv[1]. Used by tests/otel_sdk.rs. Two exports: the histograms
are cumulative (the SDK's default), so the second carries the first."""
import sys

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

endpoint = sys.argv[1]
resource = Resource.create({
    "service.name": "chat-api",
    "k8s.namespace.name": "ml",
    "k8s.deployment.name": "chat-api",
    "k8s.pod.name": "chat-api-0",
    "k8s.pod.uid": "0000-chat-api-0",
})
reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"), export_interval_millis=600_000
)
# No export at exit: the test reads the rate between the two exports below.
provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
meter = provider.get_meter("genai-test", "1.0")
# The conventions' advised buckets.
ttft = meter.create_histogram(
    "gen_ai.server.time_to_first_token", unit="s",
    explicit_bucket_boundaries_advisory=[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0],
)
duration = meter.create_histogram(
    "gen_ai.server.request.duration", unit="s",
    explicit_bucket_boundaries_advisory=[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
)
tokens = meter.create_histogram(
    "gen_ai.client.token.usage", unit="{token}",
    explicit_bucket_boundaries_advisory=[1, 4, 16, 64, 256, 1024, 4096, 16384, 65536],
)
base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "vllm", "gen_ai.request.model": "llama-3-8b"}


def requests(ok, failed):
    for _ in range(ok):
        ttft.record(0.05, base)
        duration.record(1.0, base)
        tokens.record(40, {**base, "gen_ai.token.type": "input"})
        tokens.record(20, {**base, "gen_ai.token.type": "output"})
    for _ in range(failed):
        ttft.record(0.3, base)
        duration.record(2.0, {**base, "error.type": "timeout"})


requests(20, 5)
assert provider.force_flush(), "first export failed"
requests(10, 2)
assert provider.force_flush(), "second export failed"
print("sent")
