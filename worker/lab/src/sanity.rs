//! `evidence-lens sanity`: the sanity checks of Adebayo et al. (2018) per
//! method. Cascading randomisation: the model's layers re-drawn from the top
//! down, one more at each step, and each map compared with the trained
//! model's (rank correlation of the values and of their magnitudes, SSIM).
//! For the digits network also the data randomisation test: the network
//! trained again on shuffled labels. A method that explains the model gives
//! other maps when the model changes (figures near 0); one that does not
//! (figures near 1) shows the image rather than the model.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::cascade::{self, ssim};
use lens_engine::agreement::rank_correlation;
use lens_engine::digits::net::{DigitsNet, DigitsNetClassifier};
use lens_engine::digits::{mnist, train, WEIGHTS_FILE};
use lens_engine::engine::{default_batch_size, probabilities_of, Classifier, InputImage, Target};
use lens_engine::methods::MethodKind;
use lens_engine::models::{
    same_result_tolerance, LoadedModel, Precision, Resize, TorchScriptModel,
};
use lens_worker::cli::named_images;
use lens_worker::cli::{device_from, plain_map, write_report, MapSetting, RunOptions};

#[derive(Args, Debug)]
pub struct SanityArgs {
    /// `digits`, a model folder name under --models, or a path to a model folder.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// The methods checked, separated by commas (Grad-CAM only where the
    /// model exposes its features).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "efficient-pda,pda,gradient,occlusion,saliency,grad-cam"
    )]
    pub method: Vec<MethodKind>,
    /// A folder of images [default: data/photos for photo models; the
    /// held-out digits for the digits model].
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// At most this many images (the first ones, in name order).
    #[arg(long, default_value_t = 3)]
    pub count: usize,
    /// Window side k [default: 4 for digits, 10 for photos].
    #[arg(long)]
    pub window: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Samples S of PDA.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Randomise at most this many layers from the top [default: all].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Also the data randomisation test (digits only): train the network
    /// again on shuffled labels for this many epochs and compare its maps.
    #[arg(long)]
    pub shuffled_label_epochs: Option<usize>,
    /// Where the JSON report goes (the table goes to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SanityReport {
    pub model: String,
    pub images: Vec<String>,
    pub window: usize,
    pub stride: usize,
    pub samples: usize,
    pub methods: Vec<String>,
    /// One entry per cascade step, the top layer first.
    pub cascade: Vec<Comparison>,
    pub data_randomisation: Option<DataRandomisation>,
    pub device: String,
}

/// The maps of a changed model against the trained model's, per method
/// (means over the images).
#[derive(Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// The lowest layer randomised (every layer above it is too), or the
    /// name of the changed model.
    pub changed: String,
    pub methods: Vec<Similarity>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Similarity {
    pub method: String,
    pub rank_correlation: f64,
    /// Of the absolute values: whether the same pixels matter, either sign.
    pub rank_correlation_of_magnitudes: f64,
    pub ssim: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DataRandomisation {
    pub epochs: usize,
    /// How well the network learned the shuffled labels it was trained on.
    pub training_accuracy: f64,
    pub comparison: Comparison,
}

pub fn run_sanity(args: &SanityArgs) -> anyhow::Result<()> {
    let device = device_from(args.run.device)?;
    let mut model = LoadedModel::load(&args.model, &args.run.models, device, Precision::Full)?;
    let images = named_images(&model, args.images.as_deref(), args.count, &args.run.data)?;
    anyhow::ensure!(!images.is_empty(), "no images to check on");
    let methods = methods_the_model_has(&model, &args.method)?;
    let window = args.window.unwrap_or(model.resize.default_window());
    let classes = images
        .iter()
        .map(|(_, image)| {
            let probabilities = probabilities_of(model.classifier.as_ref(), image)?;
            Ok(Target::Predicted.resolve(&probabilities).0)
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    let setting = |class| MapSetting {
        window,
        stride: args.stride,
        samples: args.samples,
        batch_size: args.run.batch_size.unwrap_or(default_batch_size(device)),
        seed: args.run.seed,
        // The trained model's class in every comparison: a changed model
        // may predict another one.
        target: Target::Class(class),
    };
    let maps_of = |model: &LoadedModel| -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
        images
            .iter()
            .zip(&classes)
            .map(|((_, image), &class)| {
                methods
                    .iter()
                    .map(
                        |&kind| Ok(plain_map(model, kind, &setting(class), image)?.maps[0].clone()),
                    )
                    .collect()
            })
            .collect()
    };
    let shape = model.classifier.input_shape();
    let compare = |changed: String, maps: &[Vec<Vec<f32>>], trained: &[Vec<Vec<f32>>]| Comparison {
        changed,
        methods: similarities(&methods, trained, maps, shape.height, shape.width),
    };

    eprintln!("maps of the trained model");
    let trained = maps_of(&model)?;
    let (named, parameterised) = with_named_parameters(&model, device)?;
    same_network(model.classifier.as_ref(), parameterised.as_ref(), &images)?;
    model.classifier = parameterised;
    let layers = cascade::layers(named);
    let steps = args.layers.unwrap_or(layers.len()).min(layers.len());
    let mut cascade = Vec::new();
    cascade::cascade(
        &layers,
        steps,
        args.run.seed,
        |lowest| -> anyhow::Result<()> {
            eprintln!("randomised from the top down to {}", lowest.name);
            cascade.push(compare(lowest.name.clone(), &maps_of(&model)?, &trained));
            Ok(())
        },
    )?;

    let data_randomisation = match args.shuffled_label_epochs {
        None => None,
        Some(epochs) => {
            anyhow::ensure!(
                model.resize == Resize::MnistDigit,
                "the data randomisation test retrains the digits network; {} is not it",
                model.name
            );
            eprintln!("training the digits network on shuffled labels ({epochs} epochs)");
            let (classifier, training_accuracy) = trained_on_shuffled_labels(args, epochs, device)?;
            model.classifier = Box::new(classifier);
            Some(DataRandomisation {
                epochs,
                training_accuracy,
                comparison: compare("shuffled labels".into(), &maps_of(&model)?, &trained),
            })
        }
    };

    let report = SanityReport {
        model: model.name.clone(),
        images: images.iter().map(|(name, _)| name.clone()).collect(),
        window,
        stride: args.stride,
        samples: args.samples,
        methods: methods
            .iter()
            .map(|&kind| kind.name().to_string())
            .collect(),
        cascade,
        data_randomisation,
        device: format!("{device:?}"),
    };
    print_table(&report);
    write_report(args.out.as_deref(), &report)
}

/// The chosen methods this model can run (Grad-CAM needs the features).
fn methods_the_model_has(
    model: &LoadedModel,
    chosen: &[MethodKind],
) -> anyhow::Result<Vec<MethodKind>> {
    let shape = model.classifier.input_shape();
    let probe = tch::Tensor::zeros(
        [1, shape.channels, shape.height, shape.width].map(|d| d as i64),
        (tch::Kind::Float, model.classifier.device()),
    );
    let has_features = model.classifier.features(&probe)?.is_some();
    let methods: Vec<MethodKind> = chosen
        .iter()
        .copied()
        .filter(|&kind| {
            let runs = kind != MethodKind::GradCam || has_features;
            if !runs {
                eprintln!("{} exposes no features: Grad-CAM left out", model.name);
            }
            runs
        })
        .collect();
    anyhow::ensure!(
        !methods.is_empty(),
        "none of the chosen methods runs on {}",
        model.name
    );
    Ok(methods)
}

type NamedParameters = Vec<(String, tch::Tensor)>;

/// The model's network again with its parameters by name: the digits
/// network from its saved weights, another model from the TorchScript file
/// its description names as `parameters`.
fn with_named_parameters(
    model: &LoadedModel,
    device: tch::Device,
) -> anyhow::Result<(NamedParameters, Box<dyn Classifier>)> {
    if model.resize == Resize::MnistDigit {
        let weights = model.folder.join(WEIGHTS_FILE);
        anyhow::ensure!(
            weights.exists(),
            "{} is missing (run ./dev setup to train the digits network again)",
            weights.display()
        );
        let net = DigitsNetClassifier::load(&weights, device, model.classifier.training_images())?;
        return Ok((net.named_parameters(), Box::new(net)));
    }
    let (network, named) = TorchScriptModel::load_parameterised(&model.folder, device)?;
    // The gradient methods want the input's gradient only, not the weights'.
    for (_, tensor) in &named {
        let _ = tensor.set_requires_grad(false);
    }
    anyhow::ensure!(
        !named.is_empty(),
        "the parameters file of {} has no named parameters (export it without freezing)",
        model.name
    );
    Ok((named, Box::new(network)))
}

/// Checks that the network with named parameters is the shipped one: the
/// same probabilities on every image.
fn same_network(
    shipped: &dyn Classifier,
    parameterised: &dyn Classifier,
    images: &[(String, InputImage)],
) -> anyhow::Result<()> {
    for (name, image) in images {
        let (a, b) = (
            probabilities_of(shipped, image)?,
            probabilities_of(parameterised, image)?,
        );
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        anyhow::ensure!(
            f64::from(worst) < same_result_tolerance(shipped.device(), Precision::Full),
            "the network with named parameters is not the shipped one: on {name} their probabilities differ by {worst}"
        );
    }
    Ok(())
}

/// The digits network trained on the training digits with their labels
/// shuffled (no augmentation: it has to memorise), and its accuracy on
/// those shuffled labels.
fn trained_on_shuffled_labels(
    args: &SanityArgs,
    epochs: usize,
    device: tch::Device,
) -> anyhow::Result<(DigitsNetClassifier, f64)> {
    let split = mnist::load_split(&args.run.data.join(lens_engine::digits::MNIST_FILE))?;
    let shuffled = train::with_shuffled_labels(&split.train, args.run.seed);
    let config = train::TrainConfig {
        epochs,
        augment: false,
        seed: args.run.seed,
        ..Default::default()
    };
    let (vs, net): (tch::nn::VarStore, DigitsNet) =
        train::train(&shuffled, &config, device, &mut |line| eprintln!("{line}"))?;
    let classifier = DigitsNetClassifier::new(vs, net, shuffled.len());
    let accuracy = train::accuracy(&classifier, &shuffled);
    Ok((classifier, accuracy))
}

/// Per method, the mean over images of how alike the changed maps are to
/// the trained ones.
fn similarities(
    methods: &[MethodKind],
    trained: &[Vec<Vec<f32>>],
    changed: &[Vec<Vec<f32>>],
    height: usize,
    width: usize,
) -> Vec<Similarity> {
    let magnitudes = |map: &[f32]| map.iter().map(|v| v.abs()).collect::<Vec<f32>>();
    methods
        .iter()
        .enumerate()
        .map(|(m, &kind)| {
            let pairs: Vec<(&[f32], &[f32])> = trained
                .iter()
                .zip(changed)
                .map(|(a, b)| (a[m].as_slice(), b[m].as_slice()))
                .collect();
            let mean = |f: &dyn Fn(&[f32], &[f32]) -> f64| {
                pairs.iter().map(|(a, b)| f(a, b)).sum::<f64>() / pairs.len() as f64
            };
            Similarity {
                method: kind.name().to_string(),
                rank_correlation: mean(&|a, b| rank_correlation(a, b)),
                rank_correlation_of_magnitudes: mean(&|a, b| {
                    rank_correlation(&magnitudes(a), &magnitudes(b))
                }),
                ssim: mean(&|a, b| ssim(a, b, height, width)),
            }
        })
        .collect()
}

/// A Markdown table on stdout: one row per changed model, per method the
/// rank correlation, that of the magnitudes and SSIM.
fn print_table(report: &SanityReport) {
    println!(
        "Sanity checks on {} over {} images (k = {}, stride {}, PDA S = {}): rank correlation / of magnitudes / SSIM with the trained model's maps\n",
        report.model,
        report.images.len(),
        report.window,
        report.stride,
        report.samples
    );
    println!("| randomised | {} |", report.methods.join(" | "));
    println!("|---|{}", "---|".repeat(report.methods.len()));
    let row = |label: &str, comparison: &Comparison| {
        let cells: Vec<String> = comparison
            .methods
            .iter()
            .map(|s| {
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    s.rank_correlation, s.rank_correlation_of_magnitudes, s.ssim
                )
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    for step in &report.cascade {
        row(&format!("down to {}", step.changed), step);
    }
    if let Some(data) = &report.data_randomisation {
        row(
            &format!(
                "labels shuffled ({} epochs, {:.0}% of them learned)",
                data.epochs,
                data.training_accuracy * 100.0
            ),
            &data.comparison,
        );
    }
}
