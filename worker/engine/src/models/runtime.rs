//! Which library runs a model's forward passes: libtorch (TorchScript, on
//! the CPU or CUDA, and the only one with gradients) or ONNX Runtime (an
//! `.onnx` file, on the CPU, several times faster there).

use tch::Device;

use super::description::ModelDescription;
use super::torchscript::Precision;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Runtime {
    /// libtorch, from the TorchScript file.
    Torch,
    /// ONNX Runtime on the CPU, from the ONNX file.
    Onnx,
}

/// The torch release the engine was built against (from the wheel's
/// `version.py`, read at build time; empty when it was not found).
const TORCH_VERSION: &str = env!("LENS_TORCH_VERSION");

impl Runtime {
    /// The name on the command line ("torch", "onnx").
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Torch => "torch",
            Runtime::Onnx => "onnx",
        }
    }

    /// The runtime with this `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Runtime> {
        [Runtime::Torch, Runtime::Onnx]
            .into_iter()
            .find(|runtime| runtime.name() == name)
    }

    /// The runtime a model's window methods run on when nobody chose one:
    /// ONNX Runtime on a CPU where the folder has an ONNX file (the same
    /// logits, several times faster), libtorch on CUDA or where there is
    /// only TorchScript; a folder with only an ONNX file has no choice.
    pub fn default_for(description: &ModelDescription, device: Device) -> Runtime {
        match (description.torchscript_file(), description.onnx_file()) {
            (None, _) => Runtime::Onnx,
            (Some(_), Some(_)) if !device.is_cuda() => Runtime::Onnx,
            _ => Runtime::Torch,
        }
    }

    /// The library and its release, for people and for a stored
    /// explanation: "libtorch 2.11.0", "ONNX Runtime 1.32.0".
    pub fn version(self) -> String {
        match self {
            Runtime::Torch => format!("libtorch {TORCH_VERSION}").trim_end().to_string(),
            Runtime::Onnx => format!("ONNX Runtime {}", super::onnx::version()),
        }
    }
}

/// What computes a map, as it is recorded with it: the runtime's release,
/// the device and the precision ("ONNX Runtime 1.32.0 on CPU", "libtorch
/// 2.11.0 on CUDA, half precision"). Two workers that say the same give the
/// same bits.
pub fn computed_by(runtime: Runtime, device: Device, precision: Precision) -> String {
    let on = match (runtime, device.is_cuda(), precision) {
        (Runtime::Onnx, _, _) | (Runtime::Torch, false, _) => "CPU",
        (Runtime::Torch, true, Precision::Full) => "CUDA",
        (Runtime::Torch, true, Precision::Half) => "CUDA, half precision",
    };
    format!("{} on {on}", runtime.version())
}
