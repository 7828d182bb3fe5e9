//! Lets the worker binary find libtorch at run time without LD_LIBRARY_PATH:
//! torch-sys tells us (DEP_TCH_LIBTORCH_LIB) where it linked libtorch from, and
//! we bake that folder into the binary's rpath.

use std::path::Path;

pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = Path::new(&lib)
        .canonicalize()
        .unwrap_or_else(|_| lib.into());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // The linker drops libtorch_cuda.so as unneeded, and CUDA then reads as
    // unavailable even on a GPU host (tch-rs issue 980): keep it linked.
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
