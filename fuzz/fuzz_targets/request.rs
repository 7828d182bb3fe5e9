//! A request off the wire (any bytes that decode as one) through the
//! worker's validation, for the digits and for a photo model.

#![no_main]

use lens_proto::v1::ExplainRequest;
use lens_worker::engine::InputShape;
use lens_worker::models::{Precision, Resize};
use lens_worker::server::{job_from_request, settings_from_request, ModelSummary};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn model(id: &str, shape: InputShape, classes: usize, resize: Resize) -> ModelSummary {
    ModelSummary {
        id: id.into(),
        name: id.into(),
        shape,
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        resize,
        conditional_sampler: resize == Resize::ImagenetCrop,
        marginal_sampler: resize == Resize::MnistDigit,
        default_batch: 16,
        precision: Precision::Full,
        device: "CPU".into(),
        agreement: None,
        defaults: None,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = ExplainRequest::decode(bytes) else {
        return;
    };
    let digits = model(
        "digits",
        InputShape {
            channels: 1,
            height: 28,
            width: 28,
        },
        10,
        Resize::MnistDigit,
    );
    let photos = model(
        "photos",
        InputShape {
            channels: 3,
            height: 224,
            width: 224,
        },
        1000,
        Resize::ImagenetCrop,
    );
    for summary in [&digits, &photos] {
        let _ = settings_from_request(&request, summary);
        if let Ok(job) = job_from_request(request.clone(), summary) {
            // An accepted request's settings are within the model.
            assert!(job.params.window <= summary.shape.height);
            assert!(job.params.stride >= 1 && job.params.stride <= job.params.window);
        }
    }
});
