//! Turning what Envoy reports into record facts: SPIFFE identities, response
//! flags, the allow/deny decision, W3C trace ids.

use super::record::Decision;

/// A SPIFFE ID split into its Istio-style parts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Spiffe {
    pub trust_domain: Option<String>,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
}

/// Splits `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
/// Other SPIFFE paths yield only the trust domain; non-SPIFFE URIs nothing.
pub fn parse_spiffe(uri: &str) -> Spiffe {
    let Some(rest) = uri.strip_prefix("spiffe://") else {
        return Spiffe::default();
    };
    let (td, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut out = Spiffe {
        trust_domain: (!td.is_empty()).then(|| td.to_string()),
        ..Spiffe::default()
    };
    let parts: Vec<&str> = path.split('/').collect();
    if let ["ns", ns, "sa", sa] = parts.as_slice() {
        if !ns.is_empty() && !sa.is_empty() {
            out.namespace = Some(ns.to_string());
            out.service_account = Some(sa.to_string());
        }
    }
    out
}

/// Picks the SPIFFE ID among a certificate's URI SANs (Envoy gives the first
/// URI SAN; some builds give several, comma-separated).
pub fn principal_from_uri_sans(sans: &str) -> Option<String> {
    let mut first = None;
    for san in sans.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if san.starts_with("spiffe://") {
            return Some(san.to_string());
        }
        first.get_or_insert(san);
    }
    first.map(str::to_string)
}

/// Envoy's response flags, in bit order of `response.flags` (the legacy bit
/// field every Envoy since 1.9 reports), with their short names.
const FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// Flags that mean the upstream side failed (for `decision: error`).
const UPSTREAM_FAILURES: &[&str] = &[
    "UH", "UT", "LR", "UR", "UF", "UC", "UO", "URX", "UMSDR", "UPE", "NC", "DF", "LH",
];

pub fn decode_flags(bits: u64) -> Vec<String> {
    FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1u64 << i) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// `denied` for 401/403 or an RBAC/ext_authz local reply; `error` for 5xx or
/// an upstream failure flag; `allowed` otherwise.
pub fn decision(code: Option<u32>, details: Option<&str>, flags: &[String]) -> Decision {
    let details = details.unwrap_or("");
    let authz_reply = details.starts_with("rbac_access_denied") || details.starts_with("ext_authz");
    if matches!(code, Some(401) | Some(403)) || authz_reply {
        return Decision::Denied;
    }
    let upstream_failed = flags
        .iter()
        .any(|f| UPSTREAM_FAILURES.contains(&f.as_str()));
    if matches!(code, Some(500..=599)) || upstream_failed {
        return Decision::Error;
    }
    Decision::Allowed
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    let valid = id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    valid.then(|| id.to_ascii_lowercase())
}

/// The span (parent) id of a W3C `traceparent` header.
pub fn span_id(traceparent: &str) -> Option<String> {
    let id = traceparent.trim().split('-').nth(2)?;
    let valid = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| id.to_ascii_lowercase())
}

/// Envoy's `tls_version` as the record spells it (`TLSv1.3`); already in that form.
pub fn tls_version(raw: &str) -> Option<String> {
    let v = raw.trim();
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_istio_spiffe_ids() {
        let s = parse_spiffe("spiffe://cluster.local/ns/shop/sa/frontend");
        assert_eq!(s.trust_domain.as_deref(), Some("cluster.local"));
        assert_eq!(s.namespace.as_deref(), Some("shop"));
        assert_eq!(s.service_account.as_deref(), Some("frontend"));
        let other = parse_spiffe("spiffe://example.org/workload/x");
        assert_eq!(other.trust_domain.as_deref(), Some("example.org"));
        assert_eq!(other.namespace, None);
        assert_eq!(parse_spiffe("https://x/ns/a/sa/b"), Spiffe::default());
        assert_eq!(parse_spiffe("spiffe://"), Spiffe::default());
    }

    #[test]
    fn picks_the_spiffe_san() {
        assert_eq!(
            principal_from_uri_sans("https://a, spiffe://td/ns/a/sa/b").as_deref(),
            Some("spiffe://td/ns/a/sa/b")
        );
        assert_eq!(principal_from_uri_sans("urn:x").as_deref(), Some("urn:x"));
        assert_eq!(principal_from_uri_sans(""), None);
    }

    #[test]
    fn decodes_response_flags() {
        assert_eq!(decode_flags(0), Vec::<String>::new());
        assert_eq!(decode_flags(0x20), vec!["UF"]);
        assert_eq!(decode_flags(0x100), vec!["NR"]);
        assert_eq!(decode_flags(0x2 | 0x8000), vec!["UH", "URX"]);
        assert_eq!(decode_flags(1 << 63), Vec::<String>::new());
    }

    #[test]
    fn decides_allowed_denied_error() {
        let none: Vec<String> = vec![];
        assert_eq!(
            decision(Some(200), Some("via_upstream"), &none),
            Decision::Allowed
        );
        assert_eq!(
            decision(Some(404), Some("route_not_found"), &["NR".into()]),
            Decision::Allowed
        );
        assert_eq!(decision(Some(403), None, &none), Decision::Denied);
        assert_eq!(decision(Some(401), None, &none), Decision::Denied);
        assert_eq!(
            decision(
                Some(429),
                Some("rbac_access_denied_matched_policy[deny]"),
                &none
            ),
            Decision::Denied
        );
        assert_eq!(decision(Some(503), None, &["UF".into()]), Decision::Error);
        assert_eq!(decision(Some(200), None, &["UR".into()]), Decision::Error);
        assert_eq!(decision(None, None, &none), Decision::Allowed);
    }

    #[test]
    fn reads_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(span_id(tp).as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id("garbage"), None);
    }
}
