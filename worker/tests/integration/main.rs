//! The worker's integration tests as one test binary: property tests of
//! what it reads from outside (uploads, requests, stored rows). The engine's
//! oracles are in `worker/engine/tests/`, the end-to-end suite in `tests/`.

mod properties;
