//! Lets the test binaries find libtorch at run time: the same rpath logic as
//! the worker's build script.

#[path = "../worker/build.rs"]
mod worker_build;

fn main() {
    worker_build::main();
}
