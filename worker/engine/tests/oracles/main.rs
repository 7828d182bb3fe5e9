//! The engine's oracle tests as one test binary: tiny hand-built models
//! whose evidence, deletion curves and samplers can be worked out by hand,
//! run through the real loop (real tch tensors, real batching).

mod common;
mod deletion_oracles;
mod engine_oracles;
mod few_pass_oracles;
mod gaussian_oracles;
mod method_oracles;
mod refine_oracles;
