//! Just enough HTTP/1.1 for the scenarios: one reader for a request or a
//! response (keeping its exact bytes, so the relay can forward them
//! untouched), and a keep-alive client for plaintext load.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 message as it crossed the wire.
#[derive(Clone, Debug)]
pub struct Message {
    /// The request line or status line, without its line end.
    pub start: String,
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
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Method and path of a request.
    pub fn method_and_path(&self) -> (&str, &str) {
        let mut parts = self.start.split(' ');
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
    let start = read_line(reader, &mut raw)?;
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
        start,
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

/// A kept-alive plaintext HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("{e}"));
        let writer = stream.try_clone().unwrap_or_else(|e| panic!("{e}"));
        Conn {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// GET `path` with these extra headers; the response, whole.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Message {
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: backend.default.svc\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.writer
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("sending GET {path}: {e}"));
        read_message(&mut self.reader)
            .unwrap_or_else(|| panic!("no complete response to GET {path}"))
    }
}
