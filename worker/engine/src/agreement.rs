//! How alike two maps of the same image are: the figures used to compare a
//! method with a reference (half with full precision, efficient PDA with PDA).

/// Spearman's rank correlation: Pearson's correlation of the ranks, ties
/// given their mean rank. 1 when one map orders the pixels as the other does.
pub fn rank_correlation(a: &[f32], b: &[f32]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Pearson's correlation; 0 when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "maps of different sizes");
    let n = a.len() as f64;
    let (mean_a, mean_b) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa * bb).sqrt()
}

/// The share of the `fraction` highest pixels of `a` that are also among
/// the `fraction` highest of `b` (1: the same evidence on top).
pub fn top_overlap(a: &[f32], b: &[f32], fraction: f64) -> f64 {
    assert_eq!(a.len(), b.len(), "maps of different sizes");
    let count = ((a.len() as f64 * fraction).round() as usize).clamp(1, a.len());
    let top = |map: &[f32]| {
        let mut order: Vec<usize> = (0..map.len()).collect();
        order.sort_by(|&i, &j| map[j].total_cmp(&map[i]));
        let mut chosen = vec![false; map.len()];
        for &i in &order[..count] {
            chosen[i] = true;
        }
        chosen
    };
    let (top_a, top_b) = (top(a), top(b));
    let shared = top_a.iter().zip(&top_b).filter(|(x, y)| **x && **y).count();
    shared as f64 / count as f64
}

/// Ranks from 1, equal values sharing the mean of their ranks.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share ranks start+1..=end.
        let shared = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = shared;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn rank_correlation_sees_order_not_scale() {
        let a = [0.1, 0.5, 0.2, 0.9];
        let squared: Vec<f32> = a.iter().map(|x| x * x * 10.0).collect();
        assert!((rank_correlation(&a, &squared) - 1.0).abs() < 1e-12);
        let reversed: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!((rank_correlation(&a, &reversed) + 1.0).abs() < 1e-12);
        // One swap of neighbours in four: 1 - 6 * 2 / (4 * 15) = 0.8.
        let swapped = [0.1, 0.9, 0.2, 0.5];
        assert!((rank_correlation(&a, &swapped) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn top_overlap_counts_shared_top_pixels() {
        let a = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let b = [5.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0];
        // Top 30%: {0, 1, 2} against {0, 9, 2}.
        assert!((top_overlap(&a, &b, 0.3) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(top_overlap(&a, &a, 0.3), 1.0);
    }
}

/// How closely each method's maps follow PDA with many samples on one
/// model, as `evidence-lens agreement` measured it. Kept as
/// `agreement.json` in the model's folder; the page shows it in its method
/// picker, so a teacher knows what a method's map is worth on this model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelAgreement {
    /// The reference, e.g. "PDA, S = 32".
    pub reference: String,
    pub reference_samples: usize,
    pub images: Vec<String>,
    pub window: usize,
    pub stride: usize,
    /// Mean rank correlation of two independent halves of the reference
    /// (S / 2 samples each): how well the reference agrees with itself.
    pub split_half: f64,
    /// The split half stepped up to the whole reference (Spearman-Brown):
    /// the most any method can be expected to reach.
    pub ceiling: f64,
    pub methods: Vec<MethodAgreement>,
    /// Where and when it was measured.
    pub device: String,
    pub measured_unix: i64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MethodAgreement {
    /// The command line's name (`efficient-pda`, `pda`, ...).
    pub method: String,
    /// S, for PDA and the sampled mean.
    pub samples: Option<usize>,
    /// Means over the images, against the reference.
    pub rank_correlation: f64,
    pub top_overlap: f64,
    /// Mean seconds per image on the measuring device.
    pub seconds: f64,
}

pub const AGREEMENT_FILE: &str = "agreement.json";

impl ModelAgreement {
    /// The measurement kept in a model's folder, if any (an unreadable one
    /// is reported and left out).
    pub fn read(folder: &std::path::Path) -> Option<ModelAgreement> {
        read_beside_model(folder, AGREEMENT_FILE)
    }
}

/// A measurement kept as JSON in a model's folder, if any (an unreadable
/// one is reported and left out).
pub fn read_beside_model<T: serde::de::DeserializeOwned>(
    folder: &std::path::Path,
    file: &str,
) -> Option<T> {
    let path = folder.join(file);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(read) => Some(read),
        Err(error) => {
            tracing::warn!("{} is unreadable: {error}", path.display());
            None
        }
    }
}

/// The reliability of a whole measurement from that of its two halves.
pub fn spearman_brown(half: f64) -> f64 {
    if half <= -1.0 {
        return -1.0;
    }
    2.0 * half / (1.0 + half)
}
