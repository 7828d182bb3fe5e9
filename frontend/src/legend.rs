//! The legend beside a map: the palette, its two ends, and what the values
//! are (which quantity, in which unit) for the method that made the map.

use lens_proto::palette::table;
use lens_proto::v1::Method;
use leptos::prelude::*;

/// The quantity a method's map shows, and its unit.
pub fn quantity(method: Method) -> &'static str {
    match method {
        Method::Pda | Method::EfficientPda | Method::SampledMean | Method::Unspecified => {
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

#[component]
pub fn Legend(
    /// The largest |value|: both ends of the scale.
    #[prop(into)]
    scale: Signal<f32>,
    /// The method whose map is shown.
    #[prop(into)]
    method: Signal<Method>,
) -> impl IntoView {
    view! {
        <div class="legend" data-testid="legend">
            <span>{move || format!("+{:.3}", scale.get())}</span>
            <div class="bar" style:background=css_gradient()></div>
            <span>{move || format!("−{:.3}", scale.get())}</span>
            <small data-testid="legend-quantity">{move || quantity(method.get())}</small>
            <small>"red: for the class, blue: against, grey: 0"</small>
        </div>
    }
}
