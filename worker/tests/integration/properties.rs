//! Property tests of what the worker reads from outside (the same functions
//! the fuzz targets in `fuzz/` drive for longer): uploads, requests and
//! stored rows never panic, and what they accept is consistent.

use lens_proto::v1::{ExplainRequest, Finished, Started, StoredExplanation, Tile};
use lens_worker::engine::InputShape;
use lens_worker::input::{
    check_upload, digit_from_bytes, photo_from_bytes, InputError, MAX_ASPECT,
};
use lens_worker::models::{Precision, Resize, Runtime};
use lens_worker::server::{job_from_request, ModelSummary};
use lens_worker::store::{decode_row, StoredRow};
use proptest::prelude::*;
use prost::Message;

const PHOTO: InputShape = InputShape {
    channels: 3,
    height: 224,
    width: 224,
};

fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x as u8).wrapping_mul(seed), (y as u8) ^ seed, seed])
    });
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

fn digits() -> ModelSummary {
    ModelSummary {
        id: "digits".into(),
        name: "digits".into(),
        shape: InputShape {
            channels: 1,
            height: 28,
            width: 28,
        },
        class_names: (0..10).map(|c| c.to_string()).collect(),
        resize: Resize::MnistDigit,
        conditional_sampler: false,
        conditional_windows: Vec::new(),
        marginal_sampler: true,
        default_batch: 16,
        precision: Precision::Full,
        runtime: Runtime::Onnx,
        runtime_version: "ONNX Runtime 1.32.0".into(),
        gradients: true,
        device: "CPU".into(),
        agreement: None,
        defaults: None,
    }
}

proptest! {
    #[test]
    fn any_bytes_are_an_upload_or_a_clear_error(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if check_upload(&bytes).is_ok() {
            if let Ok(digit) = digit_from_bytes(&bytes) {
                prop_assert_eq!(digit.values.len(), 28 * 28);
            }
            let _ = photo_from_bytes(&bytes, PHOTO);
        }
    }

    #[test]
    fn images_of_any_size_become_model_inputs(width in 1u32..80, height in 1u32..80, seed: u8) {
        let bytes = png(width, height, seed);
        if width.max(height) > width.min(height) * MAX_ASPECT {
            let refused = check_upload(&bytes).unwrap_err();
            let elongated = matches!(refused, InputError::Elongated { .. });
            prop_assert!(elongated, "{}", refused);
            return Ok(());
        }
        prop_assert_eq!(check_upload(&bytes).unwrap(), (width * height) as u64);
        let digit = digit_from_bytes(&bytes).unwrap();
        prop_assert!(digit.values.iter().all(|v| (0.0..=1.0).contains(v)));
        let photo = photo_from_bytes(&bytes, PHOTO).unwrap();
        prop_assert_eq!(photo.values.len(), 3 * 224 * 224);
        prop_assert!(photo.values.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn a_cut_image_is_an_error_or_a_whole_input(cut in 0usize..400, seed: u8) {
        // (A cut in the last chunks may leave every pixel readable.)
        let bytes = png(20, 20, seed);
        let cut = &bytes[..cut.min(bytes.len() - 1)];
        if check_upload(cut).is_ok() {
            if let Ok(digit) = digit_from_bytes(cut) {
                prop_assert_eq!(digit.values.len(), 28 * 28);
                prop_assert!(digit.values.iter().all(|v| (0.0..=1.0).contains(v)));
            }
        }
    }

    #[test]
    fn requests_are_accepted_only_within_the_model(
        method in -3i32..12,
        window in 0u32..40,
        stride in 0u32..40,
        samples in proptest::option::of(0u32..3000),
        tile in 0u32..40,
        class in proptest::option::of(0u32..20),
        padding in 0u32..12,
        batch in 0u32..2000,
    ) {
        let request = ExplainRequest {
            image: png(28, 28, 3),
            method,
            window,
            stride,
            samples,
            tile_size: tile,
            class_index: class,
            padding,
            batch_size: batch,
            ..Default::default()
        };
        let outcome = job_from_request(request, &digits());
        if !(0..=7).contains(&method) {
            prop_assert!(outcome.is_err(), "unknown method {} accepted", method);
        }
        if let Ok(job) = outcome {
            let p = &job.params;
            prop_assert!(p.window >= 1 && p.window <= 28);
            prop_assert!(p.stride >= 1 && p.stride <= p.window);
            prop_assert!(p.tile_size >= 4);
            prop_assert!(class.is_none_or(|c| c < 10));
        }
    }

    #[test]
    fn stored_rows_decode_or_say_they_are_damaged(
        key in proptest::collection::vec(any::<u8>(), 0..40),
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let row = StoredRow {
            request_key: &key,
            secret_hash: &[0; 32],
            created_unix: 0,
            model: "digits".into(),
            method: "Pda".into(),
            body: &body,
        };
        if let Ok(record) = decode_row("id", row) {
            prop_assert_eq!(key.len(), 32);
            if let Some(map) = record.explanation.map {
                prop_assert_eq!((map.width * map.height) as usize, map.values.len());
            }
        }
    }

    #[test]
    fn a_stored_explanation_reads_back_unchanged(width in 0u32..20, height in 0u32..20, wrong: bool) {
        let values = (width * height) as usize + usize::from(wrong);
        let explanation = StoredExplanation {
            started: Some(Started::default()),
            map: Some(Tile {
                width,
                height,
                values: (0..values).map(|v| v as f32).collect(),
                ..Default::default()
            }),
            finished: Some(Finished::default()),
            class_maps: Vec::new(),
        };
        let body = explanation.encode_to_vec();
        let row = StoredRow {
            request_key: &[1; 32],
            secret_hash: &[2; 32],
            created_unix: 5,
            model: "digits".into(),
            method: "Pda".into(),
            body: &body,
        };
        match decode_row("id", row) {
            Ok(record) => {
                prop_assert!(!wrong);
                prop_assert_eq!(record.explanation, explanation);
            }
            Err(_) => prop_assert!(wrong, "a consistent row was called damaged"),
        }
    }
}
