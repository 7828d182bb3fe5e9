//! What the tests feed the worker: the repository's models and data, hand-made
//! bad inputs and images, user models, `.npy` files, stored records and test
//! certificates.

use lens_proto::v1::ExplainRequest;
use lens_worker::digits::DigitsKit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// Loads the digits kit from the repository's models/ and data/.
pub fn load_kit() -> DigitsKit {
    let root = repo_root();
    DigitsKit::load(&root.join("models"), &root.join("data"), tch::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}: run ./dev setup first"))
}

/// A new empty folder under the system's temporary folder.
pub fn temp_folder(what: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let folder = std::env::temp_dir().join(format!(
        "lens-{what}-{}-{}-{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// A PNG that claims `width x height` pixels but holds no pixel data (an
/// empty IDAT): only a worker that checks the header before decoding rejects
/// it for its size rather than for being truncated.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, no interlace
    for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IDAT", &[]), (b"IEND", &[])] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc.sum().to_be_bytes());
    }
    png
}

/// Requests that must each be refused with INVALID_ARGUMENT, with what the
/// message must say: (what is wrong, request, expected words).
pub fn bad_requests(good_png: &[u8]) -> Vec<(&'static str, ExplainRequest, &'static str)> {
    use lens_proto::v1::Method;
    let base = ExplainRequest {
        image: good_png.to_vec(),
        method: Method::Pda as i32,
        window: 4,
        samples: Some(2),
        ..Default::default()
    };
    let with_image = |image: Vec<u8>| ExplainRequest {
        image,
        ..base.clone()
    };
    vec![
        (
            "not an image",
            with_image(b"GIF? no, plain text".to_vec()),
            "not a PNG or JPEG",
        ),
        ("empty upload", with_image(Vec::new()), "empty"),
        (
            "too many bytes",
            with_image(vec![0x89; lens_worker::input::MAX_BYTES + 1]),
            "limit is",
        ),
        (
            "too many pixels",
            with_image(png_header_only(100_000, 100_000)),
            "100000 x 100000 pixels",
        ),
        (
            "an unknown method",
            ExplainRequest {
                method: 99,
                ..base.clone()
            },
            "unknown method 99",
        ),
        (
            "tiles too small",
            ExplainRequest {
                tile_size: 1,
                ..base.clone()
            },
            "tile size must be at least 4",
        ),
        (
            "a budget above 1",
            ExplainRequest {
                budget: Some(1.5),
                ..base.clone()
            },
            "above 0 and at most 1 (got 1.5)",
        ),
        (
            "a budget for a gradient method",
            ExplainRequest {
                method: Method::Gradient as i32,
                budget: Some(0.5),
                ..base.clone()
            },
            "a budget applies to the window methods",
        ),
        (
            "window larger than the image",
            ExplainRequest {
                window: 29,
                ..base.clone()
            },
            "window 29 x 29 does not fit",
        ),
        (
            "no samples",
            ExplainRequest {
                samples: Some(0),
                ..base.clone()
            },
            "samples must be at least 1",
        ),
        (
            "no such class",
            ExplainRequest {
                class_index: Some(10),
                ..base.clone()
            },
            "class 10 does not exist",
        ),
    ]
}

/// The description of the 2-class, 3 x 32 x 32 models the tests trace.
pub const USER_MODEL_DESCRIPTION: &str = r#"
name = "Left or right"
file = "model.pt"
classes = "classes.txt"
channels = 3
height = 32
width = 32
normalise = "inside"
output = "logits"
training_images = 100
resize = "imagenet-crop"
"#;

/// Writes a model folder (TorchScript, classes "left" and "right", the
/// description above) whose forward pass is `forward`, traced from Rust on
/// one 3 x 32 x 32 input.
pub fn write_traced_model(folder: &Path, forward: &mut dyn FnMut(&tch::Tensor) -> tch::Tensor) {
    std::fs::create_dir_all(folder).unwrap();
    let example = tch::Tensor::rand([1, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
    let module = tch::CModule::create_by_tracing("user", "forward", &[example], &mut |inputs| {
        vec![forward(&inputs[0])]
    })
    .unwrap();
    module.save(folder.join("model.pt")).unwrap();
    std::fs::write(folder.join("classes.txt"), "left\nright\n").unwrap();
    std::fs::write(folder.join("model.toml"), USER_MODEL_DESCRIPTION).unwrap();
}

/// The shape and float32 values of an `.npy` file the CLI wrote.
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let shape = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let values = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (shape, values)
}

/// The float32 values of an `.npy` file the CLI wrote.
pub fn read_npy_values(path: &Path) -> Vec<f32> {
    read_npy(path).1
}

/// A 64 x 64 PNG, full red on the left half and half red on the right.
pub fn red_left_png() -> Vec<u8> {
    let mut photo = image::RgbImage::new(64, 64);
    for (x, _, p) in photo.enumerate_pixels_mut() {
        *p = image::Rgb([if x < 32 { 255 } else { 128 }, 0, 0]);
    }
    let mut png = Vec::new();
    photo
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// About 800,000 forward passes on a digit (PDA, k = 1, S = 1000): minutes
/// of work, for tests that stop a run.
pub fn minutes_of_work(image: Vec<u8>) -> ExplainRequest {
    ExplainRequest {
        image,
        method: lens_proto::v1::Method::Pda as i32,
        window: 1,
        samples: Some(1000),
        batch_size: 256,
        ..Default::default()
    }
}

/// A models folder holding the shipped digits model (its files linked) with
/// `agreement` as its measured agreement.
pub fn digits_with_agreement(agreement: &lens_worker::agreement::ModelAgreement) -> PathBuf {
    let json = serde_json::to_string(agreement).unwrap();
    digits_with(lens_worker::agreement::AGREEMENT_FILE, Some(&json))
}

/// A models folder holding the shipped digits model (its files linked),
/// with `file` holding `contents`, or without `file` when `None`.
pub fn digits_with(file: &str, contents: Option<&str>) -> PathBuf {
    let models = temp_folder("digits-models");
    let digits = models.join("digits");
    std::fs::create_dir_all(&digits).unwrap();
    for entry in std::fs::read_dir(repo_root().join("models/digits")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != file {
            std::os::unix::fs::symlink(entry.path(), digits.join(entry.file_name())).unwrap();
        }
    }
    if let Some(contents) = contents {
        std::fs::write(digits.join(file), contents).unwrap();
    }
    models
}

/// An agreement as `evidence-lens agreement` would write it, with figures
/// a test can recognise.
pub fn sample_agreement() -> lens_worker::agreement::ModelAgreement {
    use lens_worker::agreement::{MethodAgreement, ModelAgreement};
    let method = |method: &str, samples, rank_correlation, top_overlap| MethodAgreement {
        method: method.into(),
        samples,
        rank_correlation,
        top_overlap,
        seconds: 0.1,
    };
    ModelAgreement {
        reference: "PDA, S = 32".into(),
        reference_samples: 32,
        images: vec!["held-out digit 0".into()],
        window: 4,
        stride: 1,
        split_half: 0.97,
        ceiling: 0.98,
        methods: vec![
            method("efficient-pda", None, 0.787, 0.703),
            method("pda", Some(4), 0.949, 0.869),
            method("pda", Some(10), 0.969, 0.91),
            method("no-such-method", None, 0.5, 0.5),
        ],
        device: "Cpu".into(),
        measured_unix: 0,
    }
}

/// A finished explanation to store directly: a map of `values` floats (one
/// row), made at `created_unix`, with request key `[key; 32]`.
pub fn synthetic_record(
    values: usize,
    created_unix: i64,
    key: u8,
    secret_hash: [u8; 32],
) -> lens_worker::store::Record {
    use lens_proto::v1::{Finished, Started, StoredExplanation, Tile};
    lens_worker::store::Record {
        id: lens_worker::store::new_id(),
        request_key: [key; 32],
        secret_hash,
        created_unix,
        model: "digits".into(),
        method: "EfficientPda".into(),
        explanation: StoredExplanation {
            started: Some(Started::default()),
            map: Some(Tile {
                width: values as u32,
                height: 1,
                values: (0..values).map(|i| i as f32 * 0.5).collect(),
                ..Default::default()
            }),
            finished: Some(Finished::default()),
            class_maps: Vec::new(),
        },
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM
/// files; the certificate's DER for the client to trust.
pub fn test_certificate() -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    let folder = temp_folder("tls");
    let (cert, key) = (folder.join("cert.pem"), folder.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (cert, key, made.cert.der().to_vec())
}
