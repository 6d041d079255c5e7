//! Getting admitted records to the sink: sequencing and chaining, the
//! per-worker buffer with batches and retries, and the wire encodings.
//! Pure logic; the root context drives it.

pub mod buffer;
pub mod chain;
pub mod encode_json;
pub mod encode_otlp;
pub mod gzip;
pub mod reply;
pub mod request;
pub mod seal;
