//! Just enough HTTP/1.1 for the harness: reading one message (request or
//! response) off a keep-alive connection, with a content-length or chunked
//! body, keeping its exact bytes so a relay can forward it untouched.
//! Shared by the audit sink, the load generator and the scenarios.

use std::io::BufRead;

/// One HTTP/1.1 message as it crossed the wire.
#[derive(Clone, Debug)]
pub struct Message {
    /// The request line or status line, without its line end.
    pub start_line: String,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Every byte read for this message, to forward it unchanged.
    pub raw: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The status code of a response.
    pub fn status(&self) -> u16 {
        self.start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Method and path of a request.
    pub fn method_and_path(&self) -> (&str, &str) {
        let mut parts = self.start_line.split(' ');
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    }
}

/// Reads one message; `None` at end of stream or on anything malformed.
/// Bodies are framed by content-length or chunked encoding, as Envoy and
/// the CLI sink send them.
pub fn read_message(reader: &mut impl BufRead) -> Option<Message> {
    let mut raw = Vec::new();
    let start_line = read_line(reader, &mut raw)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut raw)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut message = Message {
        start_line,
        headers,
        body: Vec::new(),
        raw,
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size_line = read_line(reader, &mut message.raw)?;
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while !read_line(reader, &mut message.raw)?.is_empty() {}
                return Some(message);
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).ok()?;
            message.raw.extend_from_slice(&chunk);
            message.body.extend_from_slice(&chunk);
            read_line(reader, &mut message.raw)?;
        }
    }
    let len: usize = message
        .header("content-length")
        .map_or(Some(0), |v| v.parse().ok())?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    message.raw.extend_from_slice(&body);
    message.body = body;
    Some(message)
}

fn read_line(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> Option<String> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            raw.extend_from_slice(&line);
            let text = String::from_utf8(line).ok()?;
            Some(text.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
