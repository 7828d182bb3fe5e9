//! libtorch's OpenMP threads, put to rest before ONNX Runtime computes.
//!
//! After each parallel operation, the threads of libgomp (the OpenMP of the
//! PyPI torch wheel) keep spinning for the next one (300,000 `pause`
//! instructions by default: milliseconds on a recent Xeon). The engine builds each
//! batch with torch operations and then hands it to ONNX Runtime, whose own
//! threads then share the cores with that spinning: the digits' PDA took
//! 1.7 s where the network alone needs 0.9 s. Releasing torch's threads
//! before each batch (`omp_pause_resource_all`, OpenMP 5.0) costs a thread
//! start at the next torch operation, tens of microseconds.

use std::ffi::c_int;
use std::sync::OnceLock;

type PauseAll = unsafe extern "C" fn(c_int) -> c_int;

/// `omp_pause_soft`: the threads end, and start again when next needed.
const PAUSE_SOFT: c_int = 1;

/// Ends the OpenMP threads the calling thread's torch operations started,
/// so they do not spin while another library computes. Does nothing where
/// the loaded OpenMP has no `omp_pause_resource_all`.
pub fn rest_torch_threads() {
    static PAUSE: OnceLock<Option<PauseAll>> = OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        // SAFETY: looking a symbol up in the loaded libraries; a non-null
        // result is that function, whose signature OpenMP 5.0 fixes.
        unsafe {
            let symbol = libc::dlsym(libc::RTLD_DEFAULT, c"omp_pause_resource_all".as_ptr());
            (!symbol.is_null()).then(|| std::mem::transmute::<*mut libc::c_void, PauseAll>(symbol))
        }
    });
    if let Some(pause) = pause {
        // SAFETY: called outside any parallel region (it then refuses with
        // -1, which changes nothing).
        unsafe {
            pause(PAUSE_SOFT);
        }
    }
}
