//! Test code only: its parent declares it under #[cfg(test)].
use super::*;

#[test]
fn splits_host_and_port() {
    assert_eq!(split_host_port("10.0.0.7:51234"), ("10.0.0.7", Some(51234)));
    assert_eq!(split_host_port("[::1]:8080"), ("::1", Some(8080)));
    assert_eq!(
        split_host_port("[fe80::1%eth0]:443"),
        ("fe80::1%eth0", Some(443))
    );
    assert_eq!(split_host_port("[::1]"), ("::1", None));
    assert_eq!(split_host_port("::1"), ("::1", None));
    assert_eq!(split_host_port("backend"), ("backend", None));
    assert_eq!(split_host_port("backend:http"), ("backend:http", None));
    assert_eq!(split_host_port("host:99999"), ("host:99999", None));
    assert_eq!(split_host_port("[::1]x"), ("[::1]x", None));
    assert_eq!(split_host_port("[::1"), ("[::1", None));
    assert_eq!(split_host_port(""), ("", None));
}

#[test]
fn protocol_versions_use_semconv_spelling() {
    assert_eq!(http_version("HTTP/1.1"), Some("1.1"));
    assert_eq!(http_version("HTTP/2"), Some("2"));
    assert_eq!(http_version("HTTP/3"), Some("3"));
    assert_eq!(http_version("SPDY"), None);
    assert_eq!(tls_protocol("TLSv1.3"), Some(("tls", "1.3")));
    assert_eq!(tls_protocol("TLSv1.2"), Some(("tls", "1.2")));
    assert_eq!(tls_protocol("SSLv3"), Some(("ssl", "3")));
    assert_eq!(tls_protocol("TLSv"), None);
    assert_eq!(tls_protocol("quic"), None);
}
