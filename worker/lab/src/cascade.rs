//! Sanity checks for explanation methods (Adebayo et al., 2018): a method
//! that explains the model must give another map when the model's learned
//! parameters are replaced by random ones. Here: the parameters grouped into
//! layers, re-drawn in place from the top layer down, and restored after;
//! and SSIM, the structural similarity the paper reports beside the rank
//! correlation.

use tch::{Kind, TchError, Tensor};

/// Parameters that belong to one layer (`net._blocks.3`, `fc1`).
pub struct Layer {
    pub name: String,
    pub parameters: Vec<(String, Tensor)>,
}

/// Groups named parameters into layers, keeping their order (input side
/// first, as modules list them). A parameter's layer is its name up to the
/// first numbered part (a block of a sequence: `net._blocks.3`), otherwise
/// its name without the last part (`fc1.weight` -> `fc1`).
pub fn layers(named: Vec<(String, Tensor)>) -> Vec<Layer> {
    let mut layers: Vec<Layer> = Vec::new();
    for (name, tensor) in named {
        let layer = layer_of(&name);
        match layers.last_mut() {
            Some(last) if last.name == layer => last.parameters.push((name, tensor)),
            _ => layers.push(Layer {
                name: layer,
                parameters: vec![(name, tensor)],
            }),
        }
    }
    layers
}

fn layer_of(parameter: &str) -> String {
    let parts: Vec<&str> = parameter.split('.').collect();
    let numbered = parts
        .iter()
        .position(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    let end = match numbered {
        Some(index) => index + 1,
        None => parts.len().saturating_sub(1).max(1),
    };
    parts[..end].join(".")
}

/// Re-draws every parameter of `layer` in place: independent normal values
/// with the mean and standard deviation of the tensor they replace, so the
/// scale of the activations stays and what was learned goes. Seeded.
fn randomise(layer: &Layer, seed: u64) -> Result<(), TchError> {
    let _guard = tch::no_grad_guard();
    tch::manual_seed(seed as i64);
    for (_, tensor) in &layer.parameters {
        let as_float = tensor.f_to_kind(Kind::Double)?;
        let mean = as_float.f_mean(Kind::Double)?.double_value(&[]);
        let std = if tensor.numel() > 1 {
            as_float.f_std(true)?.double_value(&[])
        } else {
            0.0
        };
        let fresh = Tensor::f_randn(tensor.size(), (Kind::Float, tensor.device()))?
            .f_mul_scalar(std)?
            .f_add_scalar(mean)?
            .f_to_kind(tensor.kind())?;
        tensor.shallow_clone().f_copy_(&fresh)?;
    }
    Ok(())
}

/// Cascading randomisation: re-draws the top layer, then the one below it as
/// well, and so on for `steps` layers (seed + step for each), calling
/// `visit` with the lowest layer randomised so far after each step. The
/// trained values are back when it returns, also after an error.
pub fn cascade<E: From<TchError>>(
    layers: &[Layer],
    steps: usize,
    seed: u64,
    mut visit: impl FnMut(&Layer) -> Result<(), E>,
) -> Result<(), E> {
    let trained = Snapshot::of(layers);
    let outcome = layers
        .iter()
        .rev()
        .take(steps)
        .enumerate()
        .try_for_each(|(step, layer)| {
            randomise(layer, seed + step as u64)?;
            visit(layer)
        });
    trained.restore(layers)?;
    outcome
}

/// Copies of parameters, to put the trained values back.
struct Snapshot(Vec<Tensor>);

impl Snapshot {
    fn of(layers: &[Layer]) -> Snapshot {
        Snapshot(
            all_parameters(layers)
                .map(|tensor| tensor.copy().detach())
                .collect(),
        )
    }

    fn restore(&self, layers: &[Layer]) -> Result<(), TchError> {
        let _guard = tch::no_grad_guard();
        for (tensor, saved) in all_parameters(layers).zip(&self.0) {
            tensor.shallow_clone().f_copy_(saved)?;
        }
        Ok(())
    }
}

fn all_parameters(layers: &[Layer]) -> impl Iterator<Item = &Tensor> {
    layers
        .iter()
        .flat_map(|layer| layer.parameters.iter().map(|(_, tensor)| tensor))
}

/// Side of the square windows SSIM compares (as scikit-image by default).
const SSIM_WINDOW: usize = 7;

/// Mean structural similarity of two `height x width` maps, each first
/// stretched to [0, 1] (its least value to 0, its largest to 1: maps of
/// different methods and models have different units): 1 for maps alike up
/// to a positive scale and shift, near 0 for unrelated ones, below 0 for
/// opposite ones. Uniform 7 x 7 windows, sample (co)variances, the usual
/// constants for a data range of 1.
pub fn ssim(a: &[f32], b: &[f32], height: usize, width: usize) -> f64 {
    assert_eq!(a.len(), height * width, "map a is not {height} x {width}");
    assert_eq!(b.len(), height * width, "map b is not {height} x {width}");
    let (a, b) = (scaled(a), scaled(b));
    let side = SSIM_WINDOW.min(height).min(width);
    let n = (side * side) as f64;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut sum = 0.0;
    let mut windows = 0;
    for top in 0..=height - side {
        for left in 0..=width - side {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in top..top + side {
                for x in left..left + side {
                    let (p, q) = (a[y * width + x], b[y * width + x]);
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let (ma, mb) = (sa / n, sb / n);
            let unbiased = n / (n - 1.0).max(1.0);
            let va = (saa / n - ma * ma) * unbiased;
            let vb = (sbb / n - mb * mb) * unbiased;
            let cov = (sab / n - ma * mb) * unbiased;
            sum += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            windows += 1;
        }
    }
    sum / windows as f64
}

fn scaled(map: &[f32]) -> Vec<f64> {
    let least = map.iter().fold(f64::INFINITY, |m, v| m.min(*v as f64));
    let largest = map.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
    let scale = if largest > least {
        1.0 / (largest - least)
    } else {
        0.0
    };
    map.iter().map(|v| (*v as f64 - least) * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_group_by_layer_and_numbered_block() {
        assert_eq!(layer_of("fc1.weight"), "fc1");
        assert_eq!(layer_of("net._blocks.3._bn1.bias"), "net._blocks.3");
        assert_eq!(layer_of("net._conv_stem.weight"), "net._conv_stem");
        assert_eq!(layer_of("scale"), "scale");
    }

    #[test]
    fn cascade_randomises_from_the_top_and_restores_every_layer() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _first = tch::nn::linear(vs.root() / "first", 4, 3, Default::default());
        let _second = tch::nn::linear(vs.root() / "second", 3, 2, Default::default());
        let mut named: Vec<_> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let trained: Vec<Tensor> = named.iter().map(|(_, t)| t.copy()).collect();
        let changed = |named: &[(String, Tensor)]| -> Vec<String> {
            named
                .iter()
                .zip(&trained)
                .filter(|((_, now), before)| !now.equal(before))
                .map(|((name, _), _)| name.clone())
                .collect()
        };
        let layers = layers(
            named
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
        );
        assert_eq!(layers.len(), 2);
        let mut seen = Vec::new();
        cascade::<TchError>(&layers, 2, 7, |lowest| {
            seen.push((lowest.name.clone(), changed(&named)));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (
                    "second".to_string(),
                    vec!["second.bias".into(), "second.weight".into()]
                ),
                (
                    "first".to_string(),
                    vec![
                        "first.bias".into(),
                        "first.weight".into(),
                        "second.bias".into(),
                        "second.weight".into()
                    ]
                ),
            ]
        );
        assert!(changed(&named).is_empty(), "the trained values are back");
    }

    #[test]
    fn a_redrawn_tensor_keeps_its_mean_and_spread() {
        let tensor = Tensor::randn([200, 50], (Kind::Float, tch::Device::Cpu)) * 0.3 + 2.0;
        let before = tensor.copy();
        // Compared with the values it had (10,000 draws: each statistic is
        // within a few thousandths of them, whatever the random values).
        let (mean, spread) = (
            before.mean(Kind::Float).double_value(&[]),
            before.std(true).double_value(&[]),
        );
        let layer = Layer {
            name: "w".into(),
            parameters: vec![("w".into(), tensor.shallow_clone())],
        };
        randomise(&layer, 1).unwrap();
        assert!(!tensor.equal(&before));
        assert!((tensor.mean(Kind::Float).double_value(&[]) - mean).abs() < 0.02);
        assert!((tensor.std(true).double_value(&[]) - spread).abs() < 0.02);
    }

    #[test]
    fn ssim_is_one_for_maps_alike_up_to_scale_and_below_zero_for_opposites() {
        let map: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
        let stretched: Vec<f32> = map.iter().map(|v| v * 2.0 + 1.0).collect();
        let negated: Vec<f32> = map.iter().map(|v| -v).collect();
        assert!((ssim(&map, &stretched, 10, 10) - 1.0).abs() < 1e-12);
        assert!(ssim(&map, &negated, 10, 10) < -0.5);
    }

    #[test]
    fn ssim_of_one_window_follows_its_formula() {
        // One 7 x 7 window: a in {0, 1}, b = 1 - a (both span [0, 1]). Means m and
        // 1 - m, equal variances v, covariance -v.
        let a: Vec<f32> = (0..49).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let b: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        let m = a.iter().sum::<f32>() as f64 / 49.0;
        let v = m * (1.0 - m) * 49.0 / 48.0;
        let (c1, c2) = (0.0001, 0.0009);
        let expected = ((2.0 * m * (1.0 - m) + c1) * (-2.0 * v + c2))
            / ((m * m + (1.0 - m) * (1.0 - m) + c1) * (2.0 * v + c2));
        assert!((ssim(&a, &b, 7, 7) - expected).abs() < 1e-12);
    }
}
