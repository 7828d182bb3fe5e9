//! A model folder's network on ONNX Runtime instead of libtorch: the same
//! logits from an `.onnx` file (what PyTorch, Keras, JAX and scikit-learn
//! all export), several times faster on a CPU. ONNX Runtime's library is
//! loaded when the first model opens: from `LENS_ONNXRUNTIME` if set, else
//! the one `./dev` links from the PyPI `onnxruntime` wheel (`.libonnxruntime`
//! in the repository, found at build time). It runs on the CPU only and
//! computes no gradients: the gradient methods stay on libtorch.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};
use tch::{Device, Kind, TchError, Tensor};

use super::description::{ModelDescription, Output};
use super::torchscript::{read_class_names, ModelError};
use crate::engine::{Classifier, InputShape};

/// The library found at build time (empty when `./dev` had not linked it).
const BUILT_WITH: &str = env!("LENS_ONNXRUNTIME_BUILT_WITH");

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{folder}/model.toml names no ONNX file (`file = \"model.onnx\"`, or `onnx = \"model.onnx\"` beside TorchScript)")]
    NoOnnxFile { folder: PathBuf },
    #[error("ONNX Runtime cannot be loaded: {0} (./dev setup installs it; LENS_ONNXRUNTIME may name libonnxruntime.so)")]
    Runtime(String),
    #[error("cannot open the ONNX file {path}: {message}")]
    Open { path: PathBuf, message: String },
}

/// ONNX Runtime as this process loaded it.
struct Loaded {
    environment: Environment,
    /// Its release, from the library's file name (`libonnxruntime.so.1.32.0`):
    /// the wheel's build information names no release.
    version: String,
}

/// One ONNX Runtime per process (it allows no second environment).
fn loaded() -> Result<&'static Loaded, OnnxError> {
    static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let library = std::env::var_os("LENS_ONNXRUNTIME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(BUILT_WITH));
            if library.as_os_str().is_empty() {
                return Err("no library was found when this program was built".into());
            }
            let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", library.display());
            let builder = ort::init_from(&library).map_err(|e| failed(&e))?;
            let environment = builder
                .with_name("evidence-lens")
                .build()
                .map_err(|e| failed(&e))?;
            let name = library.canonicalize().unwrap_or(library);
            let version = name
                .file_name()
                .and_then(|name| name.to_str()?.split(".so.").nth(1))
                .unwrap_or("(release unknown)")
                .to_string();
            Ok(Loaded {
                environment,
                version,
            })
        })
        .as_ref()
        .map_err(|message| OnnxError::Runtime(message.clone()))
}

/// The library's release ("1.32.0"), or why it cannot be loaded.
pub fn version() -> String {
    match loaded() {
        Ok(loaded) => loaded.version.clone(),
        Err(error) => format!("(not loaded: {error})"),
    }
}

pub struct OnnxModel {
    /// ONNX Runtime runs one batch at a time per session.
    session: Mutex<Session>,
    description: ModelDescription,
    class_names: Vec<String>,
}

impl OnnxModel {
    /// The ONNX file `<folder>/model.toml` names, on `threads` CPU threads,
    /// checked with one forward pass like a TorchScript model.
    pub fn load(folder: &Path, threads: usize) -> Result<Self, OnnxError> {
        let description = ModelDescription::read(&folder.join("model.toml"))
            .map_err(|e| OnnxError::Model(e.into()))?;
        let Some(file) = description.onnx_file().map(str::to_string) else {
            return Err(OnnxError::NoOnnxFile {
                folder: folder.to_path_buf(),
            });
        };
        let path = folder.join(file);
        let open = |message: String| OnnxError::Open {
            path: path.clone(),
            message,
        };
        let session = Session::builder(&loaded()?.environment)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
            .and_then(|b| Ok(b.with_intra_threads(threads.max(1))?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            // Between batches the engine samples on torch's threads: ONNX
            // Runtime's must sleep then, not spin on the same cores.
            .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
            .and_then(|mut b| b.commit_from_file(&path))
            .map_err(|e| open(e.to_string()))?;
        check_input(&session, &description).map_err(open)?;
        let class_names = read_class_names(&folder.join(&description.classes))?;
        let model = OnnxModel {
            session: Mutex::new(session),
            description,
            class_names,
        };
        // One forward pass, as a TorchScript model is checked at load.
        let zeros = Tensor::zeros(model.input_shape().batch(1), (Kind::Float, Device::Cpu));
        let logits = model.logits(&zeros).map_err(|e| open(e.to_string()))?;
        let got = logits.size().last().copied().unwrap_or(0);
        if logits.dim() != 2 || got as usize != model.num_classes() {
            return Err(OnnxError::Model(ModelError::ClassCount {
                path,
                got,
                expected: model.num_classes(),
            }));
        }
        Ok(model)
    }
}

/// One f32 input of N x C x H x W with a free batch axis, where C, H and W
/// are the description's (or free): the engine sends batches of any size.
fn check_input(session: &Session, description: &ModelDescription) -> Result<(), String> {
    let [input] = session.inputs() else {
        return Err(format!(
            "it takes {} inputs, and the engine gives one (a batch of images)",
            session.inputs().len()
        ));
    };
    let (Some(shape), Some(TensorElementType::Float32)) =
        (input.dtype().tensor_shape(), input.dtype().tensor_type())
    else {
        return Err(format!(
            "its input `{}` is {:?}, not a tensor of f32",
            input.name(),
            input.dtype()
        ));
    };
    let expected = description.shape().batch(1);
    if shape.len() != 4 {
        return Err(format!(
            "its input `{}` has rank {} ({:?}); the engine gives N x C x H x W = N x {:?}",
            input.name(),
            shape.len(),
            &shape[..],
            &expected[1..]
        ));
    }
    if shape[0] > 0 {
        return Err(format!(
            "its batch axis is fixed at {}: export it with a dynamic batch axis (dynamic_axes in torch.onnx.export)",
            shape[0]
        ));
    }
    let fits = shape[1..]
        .iter()
        .zip(&expected[1..])
        .all(|(&got, &want)| got < 0 || got == want);
    if !fits {
        return Err(format!(
            "its input `{}` is {:?}, but model.toml says N x {:?} (channels, height, width)",
            input.name(),
            &shape[..],
            &expected[1..]
        ));
    }
    Ok(())
}

impl OnnxModel {
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

impl Classifier for OnnxModel {
    fn input_shape(&self) -> InputShape {
        self.description.shape()
    }
    fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    fn training_images(&self) -> usize {
        self.description.training_images
    }
    fn device(&self) -> Device {
        Device::Cpu
    }

    /// Logits for the batch, copied into one NCHW buffer (the engine builds
    /// photo batches channels-last) and back.
    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        let shape: Vec<i64> = batch.size();
        let values =
            Vec::<f32>::try_from(batch.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?;
        let failed = |e: ort::Error| TchError::Torch(format!("ONNX Runtime: {e}"));
        // The cores are ONNX Runtime's now, not spinning torch threads'.
        super::openmp::rest_torch_threads();
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let input = TensorRef::from_array_view((shape, values.as_slice())).map_err(failed)?;
        let outputs = session.run(ort::inputs![input]).map_err(failed)?;
        let (out_shape, logits) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        let output = Tensor::from_slice(logits).f_view(out_shape.to_vec().as_slice())?;
        match self.description.output {
            Output::Logits => Ok(output),
            // log p has the same softmax as the logits it came from.
            Output::Probabilities => output.f_clamp_min(1e-30)?.f_log(),
        }
    }
}
