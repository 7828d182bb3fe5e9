//! An upload, as the worker takes it: the header check before admission,
//! then decoding and conversion to both kinds of model input.

#![no_main]

use lens_worker::engine::InputShape;
use lens_worker::input::{check_upload, digit_from_bytes, photo_from_bytes};
use libfuzzer_sys::fuzz_target;

const PHOTO: InputShape = InputShape {
    channels: 3,
    height: 224,
    width: 224,
};

fuzz_target!(|bytes: &[u8]| {
    if check_upload(bytes).is_ok() {
        let _ = digit_from_bytes(bytes);
        let _ = photo_from_bytes(bytes, PHOTO);
    }
});
