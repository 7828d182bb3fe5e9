use thiserror::Error;

/// Everything the engine can refuse or fail at.
#[derive(Debug, Error)]
pub enum EngineError {
    // Bad parameters: the caller's fault, reported as such.
    #[error("window {window} x {window} does not fit in the {width} x {height} image")]
    WindowTooLarge {
        window: usize,
        width: usize,
        height: usize,
    },
    #[error("window size must be at least 1")]
    EmptyWindow,
    #[error("stride must be between 1 and the window size {window} (got {stride}); a larger stride would leave pixels without evidence")]
    BadStride { stride: usize, window: usize },
    #[error("samples must be at least 1 for PDA (got 0)")]
    NoSamples,
    #[error("samples must be at most {max} (got {samples})")]
    TooManySamples { samples: usize, max: usize },
    #[error("class {class} does not exist: the model has classes 0 to {}", classes - 1)]
    NoSuchClass { class: usize, classes: usize },
    #[error("batch size must be between 1 and {max} (got {batch_size})")]
    BadBatchSize { batch_size: usize, max: usize },
    #[error("this sampler was fitted for {fitted} x {fitted} windows, not {window} x {window}")]
    WindowMismatch { window: usize, fitted: usize },
    #[error("the patch statistics are unusable: {0}")]
    Statistics(String),
    #[error("this model does not expose its last convolutional features, which Grad-CAM needs")]
    NoFeatures,
    #[error("the map has {got} values but the image has {pixels} pixels")]
    MapSize { got: usize, pixels: usize },
    #[error("tile size must be at least 1")]
    EmptyTile,
    #[error(
        "the budget is the share of the windows to compute: above 0 and at most 1 (got {budget})"
    )]
    BadBudget { budget: f64 },
    #[error("no window of this run is at ({x}, {y}): windows start every stride pixels")]
    NoWindowAt { x: usize, y: usize },
    #[error("image is {got:?} but the model takes {expected:?}")]
    ShapeMismatch {
        got: super::InputShape,
        expected: super::InputShape,
    },

    // Not errors of the request.
    #[error("the explanation was cancelled")]
    Cancelled,
    #[error("the model failed on a batch of {images} images: {message}")]
    Model { images: usize, message: String },
    #[error("out of memory on a batch of {images} images: try a batch size of {}", (images / 2).max(1))]
    OutOfMemory { images: usize },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl EngineError {
    /// Whether the request itself was wrong (as opposed to the engine failing).
    pub fn is_invalid_argument(&self) -> bool {
        !matches!(
            self,
            EngineError::Cancelled
                | EngineError::Torch(_)
                | EngineError::Model { .. }
                | EngineError::OutOfMemory { .. }
        )
    }

    /// A model's failure on a batch of `images`; allocation failures (CUDA's
    /// or the CPU allocator's) become `OutOfMemory`.
    pub fn from_model(error: tch::TchError, images: usize) -> Self {
        let message = error.to_string();
        let lower = message.to_lowercase();
        if lower.contains("out of memory") || lower.contains("can't allocate memory") {
            EngineError::OutOfMemory { images }
        } else {
            EngineError::Model {
                images,
                message: essential_line(&message).to_string(),
            }
        }
    }
}

/// The line of a libtorch error that says what went wrong: TorchScript wraps
/// it (`RuntimeError: ...`) between an interpreter traceback and a C++ one.
fn essential_line(message: &str) -> &str {
    let lines = || message.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find_map(|l| l.split_once("Error: ").map(|(_, rest)| rest))
        .or_else(|| lines().next())
        .unwrap_or("no message")
}
