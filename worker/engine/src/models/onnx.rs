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
use ort::value::TensorRef;
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
    #[error("{folder}/model.toml names no ONNX file (`onnx = \"model.onnx\"`)")]
    NoOnnxFile { folder: PathBuf },
    #[error("ONNX Runtime cannot be loaded: {0} (./dev setup installs it; LENS_ONNXRUNTIME may name libonnxruntime.so)")]
    Runtime(String),
    #[error("cannot open the ONNX file {path}: {message}")]
    Open { path: PathBuf, message: String },
}

/// One ONNX Runtime per process (it allows no second environment).
fn environment() -> Result<&'static Environment, OnnxError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let library = std::env::var_os("LENS_ONNXRUNTIME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(BUILT_WITH));
            if library.as_os_str().is_empty() {
                return Err("no library was found when this program was built".into());
            }
            let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", library.display());
            let builder = ort::init_from(&library).map_err(|e| failed(&e))?;
            builder
                .with_name("evidence-lens")
                .build()
                .map_err(|e| failed(&e))
        })
        .as_ref()
        .map_err(|message| OnnxError::Runtime(message.clone()))
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
        let Some(file) = description.onnx.clone() else {
            return Err(OnnxError::NoOnnxFile {
                folder: folder.to_path_buf(),
            });
        };
        let path = folder.join(file);
        let open = |message: String| OnnxError::Open {
            path: path.clone(),
            message,
        };
        let session = Session::builder(environment()?)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
            .and_then(|b| Ok(b.with_intra_threads(threads.max(1))?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .and_then(|mut b| b.commit_from_file(&path))
            .map_err(|e| open(e.to_string()))?;
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
