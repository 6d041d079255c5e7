//! JSON-lines batch bodies: one record per line, each line exactly the bytes
//! the chain hashed.

pub const CONTENT_TYPE: &str = "application/x-ndjson";

pub fn encode(lines: &[&[u8]]) -> Vec<u8> {
    // Sized once: a batch body is up to `batch.max_bytes`, and growing it
    // by doubling would copy it about twice over.
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        body.extend_from_slice(line);
        body.push(b'\n');
    }
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_per_record() {
        let lines: Vec<&[u8]> = vec![b"{\"a\":1}", b"{\"b\":2}"];
        assert_eq!(super::encode(&lines), b"{\"a\":1}\n{\"b\":2}\n");
    }
}
