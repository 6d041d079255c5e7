//! Which attribute names this Envoy understands for route facts, learned
//! by a request and kept by the root context for the next ones.

/// Which attribute names this Envoy understands for route facts: newer
/// releases say `xds.route_name`, older ones `route_name`. Learned from the
/// first request that has a route, then fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    #[default]
    Unknown,
    Xds,
    Legacy,
}
