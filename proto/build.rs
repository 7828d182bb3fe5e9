//! Compiles the contract with the pure-Rust `protox`, so no `protoc` is needed,
//! and generates client and server code without tonic's transport, so the same
//! crate compiles for the browser (wasm32) and for the worker. The encoded
//! descriptors are kept too, for the worker's gRPC reflection service.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "evidence_lens/v1/lens.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("lens_descriptors.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
