//! OTLP/HTTP protobuf batch bodies (SPEC §4): one `ExportLogsServiceRequest`
//! per batch, one `LogRecord` per record whose body is the record's exact
//! JSON line, so the chain verifies from what a collector stores.

mod mapping;
mod proto;
#[cfg(test)]
mod tests;

use crate::audit::time::parse_rfc3339;
use prost::Message;
use proto::{
    AnyValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, LogRecord, ResourceLogs,
    ScopeLogs, Severity, Value,
};

pub const CONTENT_TYPE: &str = "application/x-protobuf";

const SERVICE_NAME: &str = "mesh-audit";
const SCOPE_NAME: &str = "mesh-audit";

/// Who sent the batch: the OTLP resource and scope.
#[derive(Clone, Copy, Debug)]
pub struct Resource<'a> {
    /// The emitter id of the worker VM.
    pub emitter: &'a str,
    /// The Envoy node id, when the host reports one.
    pub node_id: Option<&'a str>,
    /// The plugin version, used as the scope version.
    pub version: &'a str,
}

/// One `ExportLogsServiceRequest` with one `ResourceLogs` and one `ScopeLogs`
/// holding a `LogRecord` per line. `lines` are the records' exact JSON bytes
/// as chained; `observed_nanos` is the time of encoding.
pub fn encode(lines: &[&[u8]], resource: &Resource, observed_nanos: u64) -> Vec<u8> {
    let mut attributes = vec![
        KeyValue::string("service.name", SERVICE_NAME),
        KeyValue::string("mesh_audit.emitter", resource.emitter),
    ];
    if let Some(node) = resource.node_id {
        attributes.push(KeyValue::string("service.instance.id", node));
    }
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(proto::Resource { attributes }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_string(),
                    version: resource.version.to_string(),
                }),
                log_records: lines
                    .iter()
                    .map(|line| log_record(line, observed_nanos))
                    .collect(),
            }],
        }],
    };
    request.encode_to_vec()
}

/// A line that is not a record is still delivered, body only, as `WARN`:
/// the audit trail never loses bytes because they could not be described.
fn log_record(line: &[u8], observed_nanos: u64) -> LogRecord {
    // The chain hashes bytes, so a body that is not UTF-8 travels as bytes
    // rather than being repaired into a string that would not verify.
    let body = match std::str::from_utf8(line) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => Value::Bytes(line.to_vec()),
    };
    let mut out = LogRecord {
        observed_time_unix_nano: observed_nanos,
        body: Some(AnyValue { value: Some(body) }),
        ..LogRecord::default()
    };
    let severity = match mapping::Line::parse(line) {
        Some(record) => {
            out.time_unix_nano = parse_rfc3339(record.ts()).unwrap_or(0);
            out.trace_id = record.trace_id().map(mapping::trace_id).unwrap_or_default();
            out.span_id = record.span_id().map(mapping::span_id).unwrap_or_default();
            out.event_name = mapping::event_name(record.kind()).to_string();
            out.attributes = mapping::attributes(&record);
            mapping::severity(&record)
        }
        None => Severity::Warn,
    };
    out.severity_number = severity.number();
    out.severity_text = severity.text().to_string();
    out
}

/// Every `LogRecord` body of an `ExportLogsServiceRequest`, in order: the
/// exact record lines. Errors say what is wrong, for a `400` answer.
pub fn record_lines(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let request = ExportLogsServiceRequest::decode(body)
        .map_err(|e| format!("not an OTLP ExportLogsServiceRequest: {e}"))?;
    let mut lines = Vec::new();
    for (r, resource_logs) in request.resource_logs.into_iter().enumerate() {
        for (s, scope_logs) in resource_logs.scope_logs.into_iter().enumerate() {
            for (l, log) in scope_logs.log_records.into_iter().enumerate() {
                match log.body.and_then(|b| b.value) {
                    Some(Value::String(line)) => lines.push(line.into_bytes()),
                    Some(Value::Bytes(line)) => lines.push(line),
                    _ => {
                        return Err(format!(
                            "resource_logs[{r}].scope_logs[{s}].log_records[{l}]: no string body"
                        ))
                    }
                }
            }
        }
    }
    Ok(lines)
}
