//! The sink request for a batch (SPEC §2.3): its body in the configured
//! format and compression, and its headers. Pure: the root context hands
//! the result to the proxy's dispatch.

use super::buffer::Send;
use super::{encode_json, encode_otlp, gzip};
use crate::config::{Compression, Format, Sink};

/// Who sends: the emitter, and the Envoy node it runs in (OTLP resource).
pub struct Origin<'a> {
    pub emitter: &'a str,
    pub node_id: Option<&'a str>,
}

/// A batch, encoded for `sink`.
pub struct SinkRequest<'a> {
    sink: &'a Sink,
    emitter: &'a str,
    content_type: &'static str,
    gzipped: bool,
    /// `first-last`, the `x-mesh-audit-seq` header.
    pub range: String,
    pub body: Vec<u8>,
}

/// Encodes `send` for `sink`; `now_ms` is the OTLP observed time.
pub fn build<'a>(
    sink: &'a Sink,
    origin: &Origin<'a>,
    send: &Send<'_>,
    now_ms: u64,
) -> SinkRequest<'a> {
    let (content_type, body) = match sink.format {
        Format::Jsonl => (encode_json::CONTENT_TYPE, encode_json::encode(&send.lines)),
        Format::Otlp => {
            let resource = encode_otlp::Resource {
                emitter: origin.emitter,
                node_id: origin.node_id,
                version: crate::VERSION,
            };
            (
                encode_otlp::CONTENT_TYPE,
                encode_otlp::encode(&send.lines, &resource, now_ms * 1_000_000),
            )
        }
    };
    // A body gzip cannot pack goes as it is, without content-encoding.
    let (body, gzipped) = match sink.compression {
        Compression::Gzip => match gzip::compress(&body) {
            Some(packed) => (packed, true),
            None => (body, false),
        },
        Compression::None => (body, false),
    };
    SinkRequest {
        sink,
        emitter: origin.emitter,
        content_type,
        gzipped,
        range: format!("{}-{}", send.first_seq, send.last_seq),
        body,
    }
}

impl SinkRequest<'_> {
    /// The request's headers, in the order they are sent: ours, then the
    /// configured ones, then the token.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let sink = self.sink;
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":path", &sink.path),
            (":authority", &sink.authority),
            ("content-type", self.content_type),
            ("x-mesh-audit-emitter", self.emitter),
            ("x-mesh-audit-seq", &self.range),
        ];
        if self.gzipped {
            headers.push(("content-encoding", gzip::CONTENT_ENCODING));
        }
        headers.extend(sink.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // Validated as visible ASCII when the configuration was read.
        if let Some(value) = sink
            .authorization
            .as_deref()
            .and_then(|t| std::str::from_utf8(t).ok())
        {
            headers.push(("authorization", value));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn sink(json: &str) -> Sink {
        let env = |name: &str| (name == "TOKEN").then(|| "t0k".to_string());
        match Config::from_json(json.as_bytes(), &env) {
            Ok(c) => c.sink,
            Err(e) => panic!("{e}"),
        }
    }

    fn send<'a>(lines: &[&'a [u8]]) -> Send<'a> {
        Send {
            id: 7,
            lines: lines.to_vec(),
            first_seq: 7,
            last_seq: 8,
            attempt: 1,
        }
    }

    #[test]
    fn a_jsonl_batch_carries_our_headers_then_the_configured_ones_then_the_token() {
        let sink = sink(
            r#"{"sink":{"cluster":"c","authority":"a.example","headers":{"x-tenant":"t"},"token_env":"TOKEN"}}"#,
        );
        let origin = Origin {
            emitter: "e1",
            node_id: None,
        };
        let req = build(&sink, &origin, &send(&[b"{\"seq\":7}", b"{\"seq\":8}"]), 0);
        assert_eq!(
            req.headers(),
            [
                (":method", "POST"),
                (":path", "/v1/audit"),
                (":authority", "a.example"),
                ("content-type", encode_json::CONTENT_TYPE),
                ("x-mesh-audit-emitter", "e1"),
                ("x-mesh-audit-seq", "7-8"),
                ("x-tenant", "t"),
                ("authorization", "Bearer t0k"),
            ]
        );
        assert_eq!(
            req.body,
            encode_json::encode(&[&b"{\"seq\":7}"[..], b"{\"seq\":8}"])
        );
    }

    #[test]
    fn a_gzipped_batch_says_so_before_the_configured_headers() {
        let sink = sink(r#"{"sink":{"cluster":"c","compression":"gzip","headers":{"x-a":"b"}}}"#);
        let origin = Origin {
            emitter: "e1",
            node_id: None,
        };
        let req = build(&sink, &origin, &send(&[b"{\"seq\":7}"]), 0);
        let headers = req.headers();
        assert_eq!(headers[6], ("content-encoding", gzip::CONTENT_ENCODING));
        assert_eq!(headers[7], ("x-a", "b"));
        assert_eq!(req.body[..2], [0x1f, 0x8b], "a gzip member");
    }
}
