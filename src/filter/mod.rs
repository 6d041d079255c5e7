//! The filter's lifecycle: the root context (configure, tick, flush,
//! shutdown) and the HTTP context (a request's facts → a record).

mod conn;
mod events;
mod facts;
pub mod http;
mod naming;
mod problems;
pub mod root;
mod stats;

pub use stats::Counter;

#[cfg(target_arch = "wasm32")]
pub mod glue;
