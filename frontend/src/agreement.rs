//! What a method's map is worth on the chosen model: how closely it
//! follows PDA with many samples there, as the worker's `agreement`
//! command measured it (shown in the method picker).

use crate::domain::{Agreement, ModelChoice};
use crate::method::Method;

/// The measurement for `method` (for PDA and the sampled mean: at `samples`).
fn find(info: &ModelChoice, method: Method, samples: u32) -> Option<&Agreement> {
    let counted = method.uses_samples();
    info.agreement
        .iter()
        .find(|a| a.method == method && (!counted || a.samples == samples))
}

/// A short suffix for the method's option, where one figure describes it
/// (PDA has one per S, told in the note instead).
pub fn option_suffix(info: Option<&ModelChoice>, method: Method) -> String {
    let Some(info) = info else {
        return String::new();
    };
    if method == Method::Pda {
        return String::new();
    }
    let mut measured = info.agreement.iter().filter(|a| a.method == method);
    // Short, so the picker never cuts it off; the note under it says at
    // which S where that matters.
    match (measured.next(), measured.next()) {
        (Some(a), None) => format!(" · agrees with PDA: {:.2}", a.rank_correlation),
        _ => String::new(),
    }
}

/// One sentence under the picker for the method and S chosen, or None when
/// the model's agreement was not measured for them.
pub fn note(info: Option<&ModelChoice>, method: Method, samples: u32) -> Option<String> {
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
