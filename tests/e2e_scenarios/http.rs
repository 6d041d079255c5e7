//! A keep-alive plaintext HTTP/1.1 client for the scenarios; messages are
//! read with the harness's reader.

pub use crate::e2e::http1::{read_message, Message};

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

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
