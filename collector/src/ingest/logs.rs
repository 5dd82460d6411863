//! Flattening OTLP log records into the records the store keeps: resource
//! and record attributes merged and rendered as text, the body as text.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use crate::ingest::points::{attribute_text, resource_attributes};
use crate::store::LogRecord;

/// Flattens a request into store records, in request order.
pub fn flatten(request: &ExportLogsServiceRequest) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for rl in &request.resource_logs {
        let resource = resource_attributes(rl.resource.as_ref());
        for scope in &rl.scope_logs {
            for record in &scope.log_records {
                let mut attributes: Vec<(String, String)> = resource
                    .iter()
                    .chain(&record.attributes)
                    .map(|kv| (kv.key.clone(), attribute_text(kv.value.as_ref())))
                    .collect();
                attributes.sort();
                out.push(LogRecord {
                    time_ns: if record.time_unix_nano > 0 {
                        record.time_unix_nano
                    } else {
                        record.observed_time_unix_nano
                    },
                    severity: record.severity_text.clone(),
                    body: attribute_text(record.body.as_ref()),
                    attributes,
                });
            }
        }
    }
    out
}
