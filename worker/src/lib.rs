//! Evidence Lens worker: the server that streams evidence to the page, the
//! store behind share links, the cluster roles and the command line, over
//! the engine of `lens-engine` (re-exported here under its old paths).
//!
//! Data flows one way: image + request in (`server`), converted to the model's
//! input (`input`), explained window by window (`engine`), tiles out.

pub use lens_cluster as cluster;
pub use lens_engine::{agreement, defaults, digits, engine, input, methods, models};
pub use lens_server as server;
pub use lens_store as store;

pub mod cli;
