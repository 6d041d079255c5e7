//! gzip request bodies (`sink.compression: gzip`, `content-encoding: gzip`),
//! which every OTLP/HTTP receiver must accept.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

pub const CONTENT_ENCODING: &str = "gzip";

/// Level 1: audit batches are repetitive JSON, so the fastest level already
/// takes most of the gain, at a fraction of the CPU of the default level
/// (measured in the README, "Compression").
const LEVEL: u32 = 1;

/// `body` gzip-compressed. Writing into a `Vec` cannot fail; should the
/// encoder ever report an error, the body goes out uncompressed (`None`)
/// rather than not at all.
pub fn compress(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        Compression::new(LEVEL),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compresses_what_a_gzip_reader_restores() {
        let body: Vec<u8> = (0..500)
            .flat_map(|i| format!("{{\"kind\":\"request\",\"seq\":{i}}}\n").into_bytes())
            .collect();
        let packed = compress(&body).unwrap();
        assert!(packed.len() * 4 < body.len(), "{} bytes", packed.len());
        let mut restored = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut restored)
            .unwrap();
        assert_eq!(restored, body);
        assert_eq!(&packed[..2], &[0x1f, 0x8b], "gzip magic");
    }
}
