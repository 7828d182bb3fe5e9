//! What a method's map is worth on the chosen model: how closely it
//! follows PDA with many samples there, as the worker's `agreement`
//! command measured it (shown in the method picker).

use lens_proto::v1::{Method, MethodAgreement, ModelInfo};

/// The measurement for `method` (for PDA and the sampled mean: at `samples`).
fn find(info: &ModelInfo, method: Method, samples: u32) -> Option<&MethodAgreement> {
    let counted = matches!(method, Method::Pda | Method::SampledMean);
    info.agreement
        .iter()
        .find(|a| a.method == method as i32 && (!counted || a.samples == samples))
}

/// A short suffix for the method's option, where one figure describes it
/// (PDA has one per S, told in the note instead).
pub fn option_suffix(info: Option<&ModelInfo>, method: Method) -> String {
    let Some(info) = info else {
        return String::new();
    };
    if method == Method::Pda {
        return String::new();
    }
    let mut measured = info.agreement.iter().filter(|a| a.method == method as i32);
    match (measured.next(), measured.next()) {
        (Some(a), None) if a.samples > 0 => format!(
            " · agrees with PDA: {:.2} (S = {})",
            a.rank_correlation, a.samples
        ),
        (Some(a), None) => format!(" · agrees with PDA: {:.2}", a.rank_correlation),
        _ => String::new(),
    }
}

/// One sentence under the picker for the method and S chosen, or None when
/// the model's agreement was not measured for them.
pub fn note(info: Option<&ModelInfo>, method: Method, samples: u32) -> Option<String> {
    let info = info?;
    let found = find(info, method, samples)?;
    Some(format!(
        "On this model, this method's maps agree with {} at {:.2} (rank correlation; \
         {:.0}% of the top 10% of pixels shared). The reference agrees with itself at {:.2}.",
        info.agreement_reference,
        found.rank_correlation,
        found.top_overlap * 100.0,
        info.agreement_ceiling
    ))
}
