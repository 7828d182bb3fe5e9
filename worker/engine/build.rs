//! Lets the engine's tests and examples find libtorch at run time (the same
//! rpath logic as the worker's build script), and tells the engine where
//! `./dev` linked ONNX Runtime's library (`.libonnxruntime`, from the PyPI
//! wheel), so that no program has to be told at run time, and which torch
//! release it was built against (recorded with every explanation).

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
    println!("cargo:rustc-env=LENS_TORCH_VERSION={}", torch_version());
}

/// `__version__` from the wheel's `torch/version.py`, beside the `lib`
/// folder torch-sys linked ("2.11.0" of "2.11.0+cpu"); empty if unknown.
fn torch_version() -> String {
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return String::new();
    };
    let file = Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("__version__ = "))
        .map(|quoted| quoted.trim_matches(['\'', '"']))
        .and_then(|version| version.split('+').next())
        .unwrap_or_default()
        .to_string()
}
