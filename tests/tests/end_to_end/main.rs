//! The end-to-end suite as one test binary (one link of libtorch, not one
//! per file): the real worker in-process and as processes, native gRPC,
//! gRPC-Web, the cluster roles on private NATS and PostgreSQL servers, and
//! the page in a real headless Chromium. `./dev test` runs it with
//! `cargo nextest`, each test in its own process, several at once
//! (`.config/nextest.toml` says how many of each kind).

mod browser;
mod class_maps;
mod classroom_address;
mod classrooms;
mod cli;
mod cluster_classrooms;
mod cluster_events;
mod cluster_jobs;
mod cluster_lifecycle;
mod cluster_limits;
mod cluster_roles;
mod digits_network;
mod drawing_and_camera;
mod faithfulness;
mod grpc;
mod grpc_web;
mod hosting;
mod imagenet;
mod inspect_window;
mod metrics;
mod models;
mod onnx_runtime;
mod page_defaults;
mod regression;
mod sharing;
mod store;
mod store_suite;
mod window_panel;
