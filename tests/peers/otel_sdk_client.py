"""The real OpenTelemetry Python SDK pushing metrics and logs over OTLP/HTTP
(protobuf) to the collector given as argv[1]. Used by tests/otel_sdk.rs."""
import logging
import sys

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

endpoint = sys.argv[1]
resource = Resource.create({"service.name": "sdk-test", "k8s.namespace.name": "ml"})

reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"), export_interval_millis=600_000
)
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter("sdk-test", "1.0")
requests = meter.create_counter("requests", unit="1")
latency = meter.create_histogram("latency", unit="s")
temperature = meter.create_gauge("temperature", unit="Cel")
requests.add(5, {"route": "/a"})
requests.add(7, {"route": "/a"})
for value in (0.1, 0.2, 0.4):
    latency.record(value, {"route": "/a"})
temperature.set(42.5)
# GPU readings by the OpenTelemetry hardware conventions, as an OTel-native
# GPU exporter sends them, and a power supply's hw.power, which is no GPU's.
meter.create_gauge("hw.gpu.utilization", unit="1").set(
    0.42, {"hw.id": "GPU-sdk", "hw.gpu.task": "general", "hw.model": "NVIDIA L4"}
)
power = meter.create_gauge("hw.power", unit="W")
power.set(61.5, {"hw.id": "GPU-sdk", "hw.type": "gpu"})
power.set(480.0, {"hw.id": "psu0", "hw.type": "power_supply"})
assert provider.force_flush(), "first metrics export failed"
# A second export: the cumulative counter now carries an increase of 3.
requests.add(3, {"route": "/a"})
assert provider.force_flush(), "second metrics export failed"
provider.shutdown()

logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + "/v1/logs")))
logger = logging.getLogger("sdk-test")
logger.addHandler(LoggingHandler(logger_provider=logs))
logger.setLevel(logging.INFO)
logger.warning("disk almost full")
assert logs.force_flush(), "log export failed"
logs.shutdown()
print("sent")
