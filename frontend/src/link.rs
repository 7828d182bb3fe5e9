//! The page's state in its address, so that copying the address bar
//! reproduces the same view (as TensorFlow Playground does): model, method,
//! parameters, class, overlay opacity, view, and the explanation shown.

use web_sys::UrlSearchParams;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageState {
    pub model: Option<String>,
    pub method: Option<String>,
    pub window: Option<u32>,
    pub stride: Option<u32>,
    pub samples: Option<u32>,
    pub class: Option<u32>,
    /// The share of the windows computed, when not all.
    pub budget: Option<f64>,
    pub opacity: Option<f64>,
    /// "spread" for the uncertainty view, else the evidence.
    pub view: Option<String>,
    /// The class whose map is shown, or two for a contrast ("3-5"), when
    /// it is not the explained one.
    pub see: Option<String>,
    /// "presentation" for large type and canvases.
    pub layout: Option<String>,
    /// The shared explanation (the share link's id).
    pub explanation: Option<String>,
    /// The class this page takes part in (its code).
    pub join: Option<String>,
}

/// The state in the current address (absent keys stay `None`).
pub fn read() -> PageState {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let Ok(params) = UrlSearchParams::new_with_str(&search) else {
        return PageState::default();
    };
    let text = |key: &str| params.get(key).filter(|v| !v.is_empty());
    let number = |key: &str| text(key).and_then(|v| v.parse().ok());
    PageState {
        model: text("model"),
        method: text("method"),
        window: number("k"),
        stride: number("stride"),
        samples: number("S"),
        class: number("class"),
        budget: text("budget").and_then(|v| v.parse().ok()),
        opacity: text("opacity").and_then(|v| v.parse().ok()),
        view: text("view"),
        see: text("see"),
        layout: text("layout"),
        explanation: text("e"),
        join: text("join"),
    }
}

/// The query string for `state`, keys in a fixed order.
pub fn query(state: &PageState) -> String {
    let Ok(params) = UrlSearchParams::new() else {
        return String::new();
    };
    let add = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            params.append(key, &value);
        }
    };
    add("join", state.join.clone());
    add("e", state.explanation.clone());
    add("model", state.model.clone());
    add("method", state.method.clone());
    add("k", state.window.map(|v| v.to_string()));
    add("stride", state.stride.map(|v| v.to_string()));
    add("S", state.samples.map(|v| v.to_string()));
    add("class", state.class.map(|v| v.to_string()));
    add("budget", state.budget.map(|v| v.to_string()));
    add("opacity", state.opacity.map(|v| format!("{v:.2}")));
    add("view", state.view.clone());
    add("see", state.see.clone());
    add("layout", state.layout.clone());
    String::from(params.to_string())
}

/// Replaces the address (no new history entry) with `state`.
pub fn write(state: &PageState) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let path = window.location().pathname().unwrap_or_else(|_| "/".into());
    let url = format!("{path}?{}", query(state));
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

/// The full link to an explanation, keeping the view settings.
pub fn share_url(state: &PageState) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}/?{}", query(state))
}

/// Where this browser keeps its id (local storage).
const BROWSER_ID_KEY: &str = "evidence-lens-browser";

/// This browser's id: 128 random bits in hex, made once and kept. The
/// worker counts a client's limits by it, so a classroom behind one school
/// address is thirty browsers, not one client.
pub fn browser_id() -> Option<String> {
    let storage = Secrets::storage()?;
    if let Some(id) = storage.get_item(BROWSER_ID_KEY).ok().flatten() {
        return Some(id);
    }
    let mut bits = [0u8; 16];
    web_sys::window()?
        .crypto()
        .ok()?
        .get_random_values_with_u8_array(&mut bits)
        .ok()?;
    let id: String = bits.iter().map(|b| format!("{b:02x}")).collect();
    storage.set_item(BROWSER_ID_KEY, &id).ok()?;
    Some(id)
}

/// Secrets kept in this browser only (local storage), by id: the creator's
/// secret of an explanation, the teacher's of a class.
pub struct Secrets(&'static str);

/// The creator's secrets (delete, cancel), by share id.
pub const EXPLANATIONS: Secrets = Secrets("evidence-lens-secret-");
/// The teacher's secrets, by class code.
pub const CLASSES: Secrets = Secrets("evidence-lens-class-");
/// The link tokens of the classes this browser opened, by class code.
pub const CLASS_LINKS: Secrets = Secrets("evidence-lens-class-link-");
/// The explanations this browser made and showed in a class, by class
/// code (space-separated ids), so closing it may delete them.
pub const CLASS_RUNS: Secrets = Secrets("evidence-lens-class-runs-");

impl Secrets {
    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.0)
    }

    pub fn remember(&self, id: &str, secret: &str) {
        if let Some(storage) = Self::storage() {
            let _ = storage.set_item(&self.key(id), secret);
        }
    }

    pub fn get(&self, id: &str) -> Option<String> {
        Self::storage()?.get_item(&self.key(id)).ok()?
    }

    pub fn forget(&self, id: &str) {
        if let Some(storage) = Self::storage() {
            let _ = storage.remove_item(&self.key(id));
        }
    }
}
