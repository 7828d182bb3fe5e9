//! Faithfulness from the command line: deletion and insertion curves of a
//! map (`evidence-lens evaluate IMAGE --map MAP.npy`), or of every map that
//! `explain --evaluate` computes.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use super::{device_from, DeviceArg};
use crate::engine::{
    default_batch_size, deletion_insertion, Curves, DeletionParams, Faithfulness, InputImage,
    Removal,
};
use crate::models::{LoadedModel, Precision};

/// How the curves are drawn.
#[derive(Args, Clone, Debug)]
pub struct CurveArgs {
    /// Steps from the image to everything removed (50: 2% of the pixels each).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Random orders averaged for the random baseline.
    #[arg(long, default_value_t = 4)]
    pub random_orders: usize,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The image the map explains (PNG or JPEG).
    pub image: PathBuf,
    /// The map: a float32 `.npy` of the model's input size, as `explain`
    /// writes it (higher = more evidence for the class).
    #[arg(long)]
    pub map: PathBuf,
    /// `digits`, a model folder name under --models, or a path to a model folder.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// The class whose probability the curves follow [default: the predicted one].
    #[arg(long)]
    pub class: Option<usize>,
    /// What removed pixels become: blur, grey, or both (blur,grey).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "blur")]
    pub removal: Vec<Removal>,
    #[command(flatten)]
    pub curves: CurveArgs,
    /// Seed of the random orders (and of ties in the map's order).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per forward pass [default: 16 on a CPU, 256 on CUDA].
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// The models folder (each model is a sub-folder with a model.toml).
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
}

/// Prints one JSON line with the curves and their areas.
pub fn run_evaluate(args: &EvaluateArgs) -> anyhow::Result<()> {
    let device = device_from(args.device)?;
    let model = LoadedModel::load(&args.model, &args.models, device, Precision::Full)?;
    let image = model.input_from_bytes(&std::fs::read(&args.image)?)?;
    let (map, height, width) = super::npy::read_f32(&args.map)?;
    let shape = image.shape;
    anyhow::ensure!(
        (height, width) == (shape.height, shape.width),
        "{} is {height} x {width} but {} takes {} x {} images",
        args.map.display(),
        model.name,
        shape.height,
        shape.width
    );
    let class = match args.class {
        Some(class) => class,
        None => predicted_class(&model, &image)?,
    };
    let batch_size = args.batch_size.unwrap_or(default_batch_size(device));
    let faithfulness = evaluate_map(
        &model,
        &image,
        &map,
        class,
        &args.removal,
        &args.curves,
        args.seed,
        batch_size,
    )?;
    let summary = json!({
        "image": args.image,
        "map": args.map,
        "model": model.name,
        "class": class,
        "name": model.class_names[class],
        "faithfulness": faithfulness,
    });
    println!("{summary}");
    Ok(())
}

fn predicted_class(model: &LoadedModel, image: &InputImage) -> anyhow::Result<usize> {
    let _no_grad = tch::no_grad_guard();
    let batch = tch::Tensor::from_slice(&image.values)
        .to_device(model.classifier.device())
        .view([
            1,
            image.shape.channels as i64,
            image.shape.height as i64,
            image.shape.width as i64,
        ]);
    let logits = model.classifier.logits(&batch)?;
    Ok(logits.f_argmax(-1, false)?.int64_value(&[0]) as usize)
}

/// Deletion and insertion of `map` for `class` with each removal, as JSON.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_map(
    model: &LoadedModel,
    image: &InputImage,
    map: &[f32],
    class: usize,
    removals: &[Removal],
    curves: &CurveArgs,
    seed: u64,
    batch_size: usize,
) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    for &removal in removals {
        let params = DeletionParams {
            steps: curves.steps.max(1),
            random_orders: curves.random_orders.max(1),
            seed,
            ..DeletionParams::new(class, removal, batch_size)
        };
        let result = deletion_insertion(model.classifier.as_ref(), image, map, &params)?;
        results.push(faithfulness_json(&result));
    }
    Ok(Value::Array(results))
}

pub fn faithfulness_json(result: &Faithfulness) -> Value {
    let curves = |c: &Curves| {
        json!({
            "deletion_auc": c.deletion_auc(),
            "insertion_auc": c.insertion_auc(),
            "deletion": c.deletion,
            "insertion": c.insertion,
        })
    };
    json!({
        "removal": result.removal.name(),
        "blur_sigma": result.blur_sigma,
        "steps": result.steps,
        "class": result.class,
        "map": curves(&result.map),
        "random": curves(&result.random),
        "random_orders": result.random_orders,
        "edges": curves(&result.edges),
        "forward_passes": result.forward_passes,
    })
}
