//! The legend beside a map: the palette, its two ends, and what the values
//! are (which quantity, in which unit) for the method that made the map.

use lens_proto::palette::table;
use leptos::prelude::*;

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

/// The legend of the map on screen: its scale, and the quantity of the
/// method that made it (before a run: the method chosen).
#[component]
pub fn Legend() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    let scale = move || run.with(|r| r.scale);
    let method = move || {
        run.with(|r| r.method)
            .unwrap_or_else(|| page.settings.method.get())
    };
    view! {
        <div class="legend" data-testid="legend">
            <span>{move || format!("+{:.3}", scale())}</span>
            <div class="bar" style:background=css_gradient()></div>
            <span>{move || format!("−{:.3}", scale())}</span>
            <small data-testid="legend-quantity">{move || quantity(method())}</small>
            <small>"red: for the class, blue: against, grey: 0"</small>
        </div>
    }
}
