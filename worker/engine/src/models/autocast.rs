//! CUDA autocast (fp16 where it is safe) switched on around one model call.
//!
//! `tch::autocast` goes through libtorch's deprecated `at::autocast::
//! is_enabled` / `set_enabled`, which log a warning on every call: thousands
//! of lines per explanation. These are the current entry points of the same
//! thread-local switch, which libtorch exports (C++ names; the arguments are
//! plain integers and booleans, and neither function throws for CUDA).

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> i32;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> i32;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

/// `c10::DeviceType::CUDA`.
const CUDA: i8 = 1;

/// Runs `call` with CUDA autocast on (this thread only), then restores the
/// previous state, also when `call` panics.
pub fn with_cuda_autocast<T>(call: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: libtorch's thread-local autocast state; see the module.
            unsafe {
                if ffi::decrement_nesting() == 0 {
                    ffi::clear_cache();
                }
                ffi::set_autocast_enabled(CUDA, self.0);
            }
        }
    }
    // SAFETY: as above.
    let _restore = unsafe {
        let before = ffi::is_autocast_enabled(CUDA);
        ffi::set_autocast_enabled(CUDA, true);
        ffi::increment_nesting();
        Restore(before)
    };
    call()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda_autocast_enabled() -> bool {
        // SAFETY: as above.
        unsafe { ffi::is_autocast_enabled(CUDA) }
    }

    // The switch is thread-local state, present on CPU builds too.
    #[test]
    fn autocast_is_on_inside_and_restored_after_even_on_panic() {
        assert!(!cuda_autocast_enabled());
        assert!(with_cuda_autocast(cuda_autocast_enabled));
        assert!(with_cuda_autocast(|| with_cuda_autocast(
            cuda_autocast_enabled
        ) && cuda_autocast_enabled()));
        assert!(!cuda_autocast_enabled());
        let panicked = std::panic::catch_unwind(|| with_cuda_autocast(|| panic!("model failed")));
        assert!(panicked.is_err());
        assert!(!cuda_autocast_enabled());
    }
}
