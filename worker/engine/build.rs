//! Lets the engine's tests and examples find libtorch at run time (the same
//! rpath logic as the worker's build script), and tells the engine where
//! `./dev` linked ONNX Runtime's library (`.libonnxruntime`, from the PyPI
//! wheel), so that no program has to be told at run time.

use std::path::Path;

#[path = "../build.rs"]
mod worker_build;

fn main() {
    worker_build::main();
    let link = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.libonnxruntime");
    println!("cargo:rerun-if-changed={}", link.display());
    let library = link
        .canonicalize()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=LENS_ONNXRUNTIME_BUILT_WITH={library}");
}
