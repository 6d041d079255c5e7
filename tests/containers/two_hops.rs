//! Two hops.
