//! The worker's integration tests as one test binary: oracle tests of the
//! engine on hand-built models and property tests of the formats. (The
//! command line is tested end to end in `tests/`.)

mod common;
mod deletion_oracles;
mod engine_oracles;
mod few_pass_oracles;
mod gaussian_oracles;
mod method_oracles;
mod properties;
