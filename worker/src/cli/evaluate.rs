//! Faithfulness from the command line: deletion and insertion curves of a
//! map (`evidence-lens evaluate IMAGE --map MAP.npy`), or of every map that
//! `explain --evaluate` computes.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use super::{device_from, DeviceArg};
use crate::engine::{
    default_batch_size, deletion_insertion, probabilities_of, Curves, DeletionParams, Faithfulness,
    InputImage, Removal, Target,
};
use crate::models::{LoadedModel, Placement};
use crate::server::faithfulness;
use crate::store::{SqliteStore, Store};

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
    /// The image the map explains (PNG or JPEG), with --map.
    #[arg(required_unless_present = "stored")]
    pub image: Option<PathBuf>,
    /// The map: a float32 `.npy` of the model's input size, as `explain`
    /// writes it (higher = more evidence for the class).
    #[arg(long, required_unless_present = "stored")]
    pub map: Option<PathBuf>,
    /// Or a stored explanation (its share id): its map and input, and the
    /// result is kept with it (as the page's "How faithful is this map?").
    #[arg(long, conflicts_with_all = ["image", "map"])]
    pub stored: Option<String>,
    /// The store folder, with --stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// `digits`, a model folder name under --models, or a path to a model
    /// folder [default: efficientnet-lite0; with --stored, the explanation's].
    #[arg(long)]
    pub model: Option<String>,
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
    if let Some(id) = &args.stored {
        return evaluate_stored(args, id);
    }
    let (Some(image_path), Some(map_path)) = (&args.image, &args.map) else {
        anyhow::bail!("give an image and --map, or --stored ID");
    };
    let device = device_from(args.device)?;
    let spec = args.model.as_deref().unwrap_or("efficientnet-lite0");
    let model = LoadedModel::load_on(spec, &args.models, Placement::on(device))?;
    let image = model.input_from_bytes(&std::fs::read(image_path)?)?;
    let (map, height, width) = super::npy::read_f32(map_path)?;
    let shape = image.shape;
    anyhow::ensure!(
        (height, width) == (shape.height, shape.width),
        "{} is {height} x {width} but {} takes {} x {} images",
        map_path.display(),
        model.name,
        shape.height,
        shape.width
    );
    let class = match args.class {
        Some(class) => class,
        None => {
            Target::Predicted
                .resolve(&probabilities_of(model.classifier.as_ref(), &image)?)
                .0
        }
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
        "image": image_path,
        "map": map_path,
        "model": model.name,
        "class": class,
        "name": model.class_names[class],
        "faithfulness": faithfulness,
    });
    println!("{summary}");
    Ok(())
}

/// A stored explanation's curves, kept with it as the page keeps them (the
/// page's settings: 50 steps, 4 random orders, seed 0).
fn evaluate_stored(args: &EvaluateArgs, id: &str) -> anyhow::Result<()> {
    let store = SqliteStore::open(&args.store)?;
    let record = store
        .load(id)?
        .ok_or_else(|| anyhow::anyhow!("{} holds no explanation {id}", args.store.display()))?;
    let device = device_from(args.device)?;
    let spec = args.model.as_deref().unwrap_or(&record.model);
    let model = LoadedModel::load_on(spec, &args.models, Placement::on(device))?;
    let mut results = Vec::new();
    for &removal in &args.removal {
        let began = std::time::Instant::now();
        let result = faithfulness::of_stored(&model, &record, removal)?;
        let kept = faithfulness::to_proto(&result, began.elapsed().as_secs_f64());
        store.save_faithfulness(id, removal.name(), &kept)?;
        results.push(faithfulness_json(&result));
    }
    let summary = json!({
        "stored": id,
        "model": record.model,
        "method": record.method,
        "faithfulness": results,
    });
    println!("{summary}");
    Ok(())
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
