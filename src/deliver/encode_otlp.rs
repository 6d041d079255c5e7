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
    AnyValue, ExportLogsServiceRequest, ExportLogsServiceResponse, InstrumentationScope, KeyValue,
    LogRecord, ResourceLogs, ScopeLogs, Severity, Value,
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

/// What a collector's 2xx reply says about the batch: `partial_success`
/// (OTLP/HTTP spec: the request was only partly accepted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialSuccess {
    /// `rejected_log_records`: how many records of the batch it refused.
    pub rejected: u64,
    /// `error_message`: why (a warning when nothing was rejected).
    pub message: String,
}

/// Reads an `ExportLogsServiceResponse`, protobuf or (`json`) the OTLP JSON
/// form. `Ok(None)`: full success (an empty body is one). Errors say why the
/// body could not be read.
pub fn partial_success(body: &[u8], json: bool) -> Result<Option<PartialSuccess>, String> {
    let found = if json {
        partial_success_json(body)?
    } else {
        ExportLogsServiceResponse::decode(body)
            .map_err(|e| format!("not an OTLP ExportLogsServiceResponse: {e}"))?
            .partial_success
            .map(|p| PartialSuccess {
                // A negative count is nonsense: treat it as none refused.
                rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                message: p.error_message,
            })
    };
    Ok(found.filter(|p| p.rejected > 0 || !p.message.is_empty()))
}

/// The JSON mapping: lowerCamelCase (or the proto field names), and the
/// int64 count as a string or a number.
fn partial_success_json(body: &[u8]) -> Result<Option<PartialSuccess>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("not an OTLP ExportLogsServiceResponse (JSON): {e}"))?;
    let field = |v: &'_ serde_json::Value, camel: &str, snake: &str| {
        v.get(camel).or_else(|| v.get(snake)).cloned()
    };
    let Some(p) = field(&v, "partialSuccess", "partial_success") else {
        return Ok(None);
    };
    let rejected = match field(&p, "rejectedLogRecords", "rejected_log_records") {
        Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
        Some(n) => n.as_i64(),
        None => Some(0),
    }
    .ok_or("partialSuccess.rejectedLogRecords is not an integer")?;
    let message = field(&p, "errorMessage", "error_message")
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(Some(PartialSuccess {
        rejected: u64::try_from(rejected).unwrap_or(0),
        message,
    }))
}
