//! What a report calls sources, destinations and routes. Names follow what
//! tells workloads apart under Istio too, where every inbound route is
//! `default` and every inbound cluster `inbound|PORT||`: the destination is
//! the workload's principal (plus its service when the record names one),
//! and a route without a telling name is its method and path template,
//! numeric and UUID segments folded into `{id}`.

use mesh_audit::audit::identity::parse_spiffe;
use mesh_audit::audit::record::{LossReason, Record};

/// The source label of a request without a peer identity (no mTLS).
pub const NO_IDENTITY: &str = "(no identity)";

pub fn reason_name(reason: Option<LossReason>) -> &'static str {
    match reason {
        Some(LossReason::BufferFull) => "buffer_full",
        Some(LossReason::RateLimited) => "rate_limited",
        Some(LossReason::Rejected) => "rejected",
        None => "unknown",
    }
}

pub fn source_of(r: &Record) -> String {
    r.source
        .as_ref()
        .and_then(|s| s.principal.clone())
        .unwrap_or_else(|| NO_IDENTITY.to_string())
}

/// The route's name when it tells routes apart, else method and path
/// template (`GET /orders/{id}`). Istio names every inbound route
/// `default`, which tells nothing.
pub fn route_of(r: &Record) -> String {
    if let Some(name) = r
        .route
        .as_ref()
        .and_then(|x| x.name.clone())
        .filter(|n| !n.is_empty() && n != "default")
    {
        return name;
    }
    let req = r.request.as_ref();
    let method = req.and_then(|q| q.method.as_deref()).unwrap_or("-");
    let path = req
        .and_then(|q| q.path.as_deref())
        .map_or_else(|| "-".to_string(), path_template);
    format!("{method} {path}")
}

/// `path` with each numeric or UUID segment replaced by `{id}`, so
/// `/orders/42` and `/orders/7` are one route.
pub fn path_template(path: &str) -> String {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.split('/')
        .map(|segment| {
            let numeric = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
            if numeric || is_uuid(segment) {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// 8-4-4-4-12 hex digits, either case.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The destination workload, and the service it was reached as: its
/// principal (the local certificate's SPIFFE ID) when known, else the
/// service alone, else `(unknown)`. A bare service name is qualified with
/// the principal's namespace, so `backend` and `backend.shop.svc…` agree.
pub fn destination_of(r: &Record) -> (String, Option<String>) {
    let principal = r
        .destination
        .as_ref()
        .and_then(|d| d.principal.clone())
        .filter(|p| !p.is_empty());
    match (principal, service_of(r)) {
        (Some(p), Some(s)) => {
            let s = match parse_spiffe(&p).namespace {
                Some(ns) if !s.contains('.') => format!("{s}.{ns}"),
                _ => s,
            };
            (p, Some(s))
        }
        (Some(p), None) => (p, None),
        (None, Some(s)) => (s, None),
        (None, None) => ("(unknown)".to_string(), None),
    }
}

/// The service a request was for. Istio's outbound cluster
/// `outbound|PORT|SUBSET|HOST` names it; its inbound cluster
/// `inbound|PORT||` does not, and then the authority the caller used does;
/// any other cluster name is the operator's own name for the service.
/// Kubernetes names are shortened to `name.namespace`.
pub fn service_of(r: &Record) -> Option<String> {
    let cluster = r
        .route
        .as_ref()
        .and_then(|x| x.cluster.as_deref())
        .filter(|c| !c.is_empty());
    let from_cluster = match cluster.map(|c| c.split('|').collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 4 && matches!(parts[0], "inbound" | "outbound") => {
            Some(parts[3]).filter(|h| !h.is_empty())
        }
        Some(_) => cluster,
        None => None,
    };
    let authority = || {
        let a = r.request.as_ref()?.authority.as_deref()?;
        let host = match a.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => a,
        };
        // An address says where, not what.
        let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
        (!host.is_empty() && !is_ip).then_some(host)
    };
    let host = from_cluster.or_else(authority)?;
    Some(match host.split_once(".svc.") {
        Some((name_ns, _)) => name_ns.to_string(),
        None => host.strip_suffix(".svc").unwrap_or(host).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_uuid_segments_fold_into_a_template() {
        for (path, template) in [
            ("/orders/42", "/orders/{id}"),
            ("/orders/42/items/7?x=1", "/orders/{id}/items/{id}"),
            (
                "/u/3F2504E0-4F89-11D3-9A0C-0305E82C3301/photo",
                "/u/{id}/photo",
            ),
            ("/v2/orders", "/v2/orders"),
            ("/orders/42a", "/orders/42a"),
            ("/", "/"),
            ("/a//b", "/a//b"),
        ] {
            assert_eq!(path_template(path), template, "{path}");
        }
    }

    fn istio(cluster: &str, authority: &str, principal: Option<&str>) -> Record {
        let json = serde_json::json!({
            "kind": "request", "ts": "2026-11-21T14:03:05.000000Z",
            "destination": principal.map(|p| serde_json::json!({"principal": p})),
            "request": {"method": "GET", "authority": authority, "path": "/orders/42"},
            "route": {"name": "default", "cluster": cluster}
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn destinations_are_workloads_and_their_services_under_istio_naming() {
        let backend = "spiffe://cluster.local/ns/shop/sa/backend";
        let cases = [
            // Inbound at the server's sidecar: the cluster says nothing.
            (
                istio(
                    "inbound|8080||",
                    "backend.shop.svc.cluster.local:8080",
                    Some(backend),
                ),
                (backend, Some("backend.shop")),
            ),
            (
                istio("inbound|8080||", "backend:8080", Some(backend)),
                (backend, Some("backend.shop")),
            ),
            (
                istio("inbound|8080||", "10.0.0.9:8080", Some(backend)),
                (backend, None),
            ),
            // Outbound at the client's sidecar: the cluster names the service.
            (
                istio(
                    "outbound|8080||orders.shop.svc.cluster.local",
                    "orders:8080",
                    None,
                ),
                ("orders.shop", None),
            ),
            (istio("backend", "backend", None), ("backend", None)),
            (
                istio("inbound|8080||", "[::1]:8080", None),
                ("(unknown)", None),
            ),
        ];
        for (record, (key, service)) in cases {
            assert_eq!(
                destination_of(&record),
                (key.to_string(), service.map(str::to_string))
            );
        }
        assert_eq!(
            route_of(&istio("inbound|8080||", "b", None)),
            "GET /orders/{id}"
        );
    }
}
