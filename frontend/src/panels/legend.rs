//! The legend beside a map: the palette, its two ends, and what the values
//! are (which quantity, in which unit) for the method that made the map,
//! or which two classes a contrast map compares.

use lens_proto::palette::table;
use leptos::prelude::*;

use crate::class_maps::MapView;
use crate::method::Method;
use crate::state::use_page;

/// The quantity a method's map shows, and its unit.
pub fn quantity(method: Method) -> &'static str {
    match method {
        Method::Pda | Method::EfficientPda | Method::SampledMean => {
            "weight of evidence in bits (log₂ odds of the class with the window against without it)"
        }
        Method::Gradient => "weight of evidence in bits, to first order (from the gradient)",
        Method::Occlusion => "drop in the class probability when the window is grey",
        Method::Saliency => "gradient magnitude |∂P(class)/∂pixel|",
        Method::GradCam => "Grad-CAM activation (relative; evidence for the class only)",
    }
}

/// The palette as a CSS gradient, +scale at the top.
fn css_gradient() -> String {
    let colours = table();
    let last = colours.len() - 1;
    let stops: Vec<String> = (0..=16)
        .map(|i| {
            let [r, g, b] = colours[last - i * last / 16];
            format!("rgb({r}, {g}, {b})")
        })
        .collect();
    format!("linear-gradient(to bottom, {})", stops.join(", "))
}

/// For a map made with a budget: how many of its windows were computed.
fn computed_note(run: &crate::run_view::RunView) -> Option<String> {
    let estimated = run.estimated_windows.len();
    let windows = run.window_probabilities.len();
    (estimated > 0 && windows >= estimated).then(|| {
        format!(
            "{} of {} windows computed, the rest estimated from their neighbours",
            thousands(windows - estimated),
            thousands(windows)
        )
    })
}

/// 11449 as "11,449".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The legend of the map on screen: its scale, and the quantity of the
/// method that made it (before a run: the method chosen).
#[component]
pub fn Legend() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    // The streamed map's scale comes with each tile; another map's is
    // computed once it is shown.
    let shown = Memo::new(move |_| match page.shown_view() {
        MapView::Explained => (MapView::Explained, run.with(|r| r.scale)),
        _ => {
            let (view, map) = page.displayed();
            (view, map.scale())
        }
    });
    let scale = move || shown.get().1;
    let method = move || {
        run.with(|r| r.method)
            .unwrap_or_else(|| page.settings.method.get())
    };
    let names = move |a: u32, b: u32| run.with(|r| (r.class_name(a), r.class_name(b)));
    let what = move || match shown.get().0 {
        MapView::Contrast(a, b) => {
            let (a, b) = names(a, b);
            format!("weight of evidence for {a} minus that for {b}, in bits")
        }
        _ => quantity(method()).to_string(),
    };
    let colours = move || match shown.get().0 {
        MapView::Contrast(a, b) => {
            let (a, b) = names(a, b);
            format!(
                "red: for {a} rather than {b}, blue: for {b} rather than {a}, grey: no difference"
            )
        }
        _ => "red: for the class, blue: against, grey: 0".to_string(),
    };
    view! {
        <div class="legend" data-testid="legend">
            <span>{move || format!("+{:.3}", scale())}</span>
            <div class="bar" style:background=css_gradient()></div>
            <span>{move || format!("−{:.3}", scale())}</span>
            <small data-testid="legend-quantity">{what}</small>
            {move || run.with(computed_note).map(|note| view! {
                <small data-testid="legend-computed">{note}</small>
            })}
            <small data-testid="legend-colours">{colours}</small>
        </div>
    }
}
