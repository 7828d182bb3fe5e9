//! The models the worker serves: every folder under the models folder that
//! has a `model.toml` (the digits network is one of them). A folder that fails to
//! load is logged and listed as broken; the others still load.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tch::Device;

use lens_engine::agreement::ModelAgreement;
use lens_engine::defaults::ModelDefaults;
use lens_engine::engine::{default_batch_size, InputShape};
use lens_engine::methods::MethodKind;
use lens_engine::models::{LoadedModel, Placement, Precision, Resize, Runtime};

pub use super::presets::Presets;

/// What requests are checked against, readable without locking the model.
#[derive(Clone, Debug)]
pub struct ModelSummary {
    pub id: String,
    pub name: String,
    pub shape: InputShape,
    pub class_names: Vec<String>,
    pub resize: Resize,
    pub conditional_sampler: bool,
    /// The windows the conditional sampler works for (default padding).
    pub conditional_windows: Vec<u32>,
    pub marginal_sampler: bool,
    /// Images per forward pass when a request does not say (per device).
    pub default_batch: usize,
    /// Half precision changes the maps a little, so it is part of a request's key.
    pub precision: Precision,
    /// What runs the window methods; ONNX Runtime's rounding differs from
    /// libtorch's, so it is part of a request's key too.
    pub runtime: Runtime,
    /// The runtime's library and release ("ONNX Runtime 1.32.0").
    pub runtime_version: String,
    /// Whether the gradient methods can run (the model has TorchScript).
    pub gradients: bool,
    /// Where it runs, for people: "CPU", "CUDA", "CUDA, half precision".
    pub device: String,
    /// How its methods agree with PDA with many samples, where measured.
    pub agreement: Option<ModelAgreement>,
    /// The measurement its defaults are chosen from, where made.
    pub defaults: Option<ModelDefaults>,
}

impl ModelSummary {
    pub fn default_window(&self) -> usize {
        self.resize.default_window()
    }
}

pub struct Entry {
    pub summary: ModelSummary,
    /// Locked by the job that uses the model.
    pub model: Arc<Mutex<LoadedModel>>,
    /// What computes its window methods' maps and its gradient methods'
    /// (`LoadedModel::computed_by`), readable without the lock.
    computed_by: [String; 2],
}

impl Entry {
    /// What computes a `kind` map of this model: "ONNX Runtime 1.32.0 on CPU".
    pub fn computed_by(&self, kind: MethodKind) -> &str {
        &self.computed_by[kind.needs_gradients() as usize]
    }
}

#[derive(Default)]
pub struct Registry {
    pub entries: Vec<Entry>,
    /// Folder and reason, for each model that could not be loaded.
    pub broken: Vec<(String, String)>,
    /// The sample pictures the page offers.
    pub presets: Presets,
}

impl Registry {
    /// Loads every model folder, the digit presets and the sample photos.
    pub fn load(models: &Path, data: &Path, placement: Placement) -> Registry {
        let mut registry = Registry {
            presets: Presets::load(data),
            ..Registry::default()
        };
        let mut folders: Vec<_> = std::fs::read_dir(models)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        folders.sort();
        for folder in folders.iter().filter(|f| f.join("model.toml").exists()) {
            let id = folder
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            match LoadedModel::load_on(&folder.to_string_lossy(), models, placement) {
                Ok(model) => registry.add(&id, model),
                Err(error) => registry.report(&folder.display().to_string(), error.to_string()),
            }
        }
        registry
    }

    pub fn add(&mut self, id: &str, model: LoadedModel) {
        tracing::info!("model {id}: {} on {}", model.name, model.runtime.version());
        let summary = ModelSummary {
            id: id.to_string(),
            name: model.name.clone(),
            shape: model.classifier.input_shape(),
            class_names: model.class_names.clone(),
            resize: model.resize,
            conditional_sampler: !model.statistics.is_empty(),
            conditional_windows: model
                .conditional_windows(lens_engine::methods::DEFAULT_PADDING)
                .into_iter()
                .map(|w| w as u32)
                .collect(),
            marginal_sampler: model.marginal.is_some(),
            default_batch: default_batch_size(model.classifier.device()),
            precision: model.precision,
            runtime: model.runtime,
            runtime_version: model.runtime.version(),
            gradients: model.has_torchscript,
            device: device_name(model.classifier.device(), model.precision),
            agreement: ModelAgreement::read(&model.folder),
            defaults: ModelDefaults::read(&model.folder),
        };
        let computed_by = [model.computed_by(false), model.computed_by(true)];
        self.entries.push(Entry {
            summary,
            model: Arc::new(Mutex::new(model)),
            computed_by,
        });
    }

    fn report(&mut self, folder: &str, error: String) {
        tracing::error!("cannot load the model in {folder}: {error}");
        self.broken.push((folder.to_string(), error));
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.summary.id == id)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.summary.id.as_str()).collect()
    }
}

fn device_name(device: Device, precision: Precision) -> String {
    match (device.is_cuda(), precision) {
        (false, _) => "CPU".into(),
        (true, Precision::Full) => "CUDA".into(),
        (true, Precision::Half) => "CUDA, half precision".into(),
    }
}
