//! Lets this crate's tests find libtorch at run time: the same rpath logic
//! as the worker's build script.

#[path = "../build.rs"]
mod worker_build;

fn main() {
    worker_build::main();
}
