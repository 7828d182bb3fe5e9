//! Shared pieces of the end-to-end tests, by kind: the programs a test
//! starts (`processes`: the real worker in-process and as a child process),
//! `clients` for both gRPC flavours and `/metrics`, and `fixtures` (the
//! repository's models and data, hand-made bad inputs); the private NATS and
//! PostgreSQL servers and the headless browser have their own modules.
//!
//! The worker needs what `./dev setup` produces (models/, data/) and the
//! browser test the page that `./dev test` builds (dist/).

pub mod browser;
pub mod clients;
pub mod cluster;
pub mod fixtures;
pub mod nats_server;
pub mod postgres_server;
pub mod processes;

pub use clients::*;
pub use fixtures::*;
pub use processes::*;
