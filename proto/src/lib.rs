//! The only contract between the Evidence Lens page and the worker.
//!
//! Generated message and service types live in [`v1`]. The worker converts
//! them to its own domain types at the service edge; the engine never sees them.
//! [`palette`] is the one shared piece of presentation: how a map is
//! coloured; [`windows`] the one shared piece of geometry: where windows sit.

/// A lesson's minute: the page asks before starting a run estimated longer,
/// and the worker suggests a stride that fits it.
pub const LESSON_SECONDS: f64 = 60.0;

pub mod npy;
pub mod palette;
/// In a crate of its own so that the engine can use it without the wire.
pub use lens_windows as windows;

pub mod v1 {
    tonic::include_proto!("evidence_lens.v1");

    /// The encoded `FileDescriptorSet` of the contract (for gRPC reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/lens_descriptors.bin"));
}
