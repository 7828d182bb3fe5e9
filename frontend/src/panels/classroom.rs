//! The classroom in the header: a button that opens a class; for its
//! teacher, the code, a QR code of the link and how many follow; for a
//! student, whether they follow the teacher or explore, with a way back.

use leptos::prelude::*;
use qrcode::render::svg;
use qrcode::QrCode;

use crate::classroom::{class_link, close_class, open_class};
use crate::state::{use_page, Role};

#[component]
pub fn ClassroomBar() -> impl IntoView {
    let page = use_page();
    move || match page.class.role.get() {
        None => view! {
            <button class="open-class" data-testid="open-class" on:click=move |_| open_class(page)>
                "Open a class"
            </button>
        }
        .into_any(),
        Some(Role::Teacher { code, .. }) => view! { <TeacherPanel code=code /> }.into_any(),
        Some(Role::Student { code }) => view! { <StudentBanner code=code /> }.into_any(),
    }
}

/// The QR code of `text` as SVG markup.
fn qr_svg(text: &str) -> String {
    QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

/// The teacher's panel: the code, the QR code of the link, how many follow.
#[component]
fn TeacherPanel(code: String) -> impl IntoView {
    let page = use_page();
    let link = class_link(&code);
    let qr = qr_svg(&link);
    let followers = page.class.followers;
    view! {
        <div class="class-panel" data-testid="class-panel">
            <div class="qr" data-testid="class-qr" data-link=link.clone() role="img"
                aria-label="QR code of the class link" inner_html=qr></div>
            <div>
                <p class="class-code">"Class code "<strong data-testid="class-code">{code}</strong></p>
                <p class="class-link">{link}</p>
                <p data-testid="followers">
                    {move || match followers.get() {
                        1 => "1 student following".to_string(),
                        n => format!("{n} students following"),
                    }}
                </p>
                <div class="class-buttons">
                    <button data-testid="close-class" on:click=move |_| close_class(page, false)>"Close the class"</button>
                    <button data-testid="close-class-delete" title="Also deletes the explanations this browser made and showed in the class"
                        on:click=move |_| close_class(page, true)>"Close and delete its explanations"</button>
                </div>
            </div>
        </div>
    }
}

/// A student's banner: following the teacher, or exploring with a way back.
#[component]
fn StudentBanner(code: String) -> impl IntoView {
    let class = use_page().class;
    let (following, ended) = (class.following, class.ended);
    // A link carries the class's token; the worker tells its short code.
    let code = move || class.code.get().unwrap_or_else(|| code.clone());
    view! {
        <div class="class-banner" data-testid="class-banner" role="status"
            data-following=move || following.get().to_string()>
            <span>
                {move || {
                    let code = code();
                    if ended.get() {
                        format!("The class {code} has ended.")
                    } else if following.get() {
                        format!("Following class {code}: you see what the teacher shows.")
                    } else {
                        format!("Exploring on your own (class {code}).")
                    }
                }}
            </span>
            <Show when=move || !following.get() && !ended.get()>
                <button data-testid="follow-again" on:click=move |_| following.set(true)>
                    "Follow the teacher again"
                </button>
            </Show>
        </div>
    }
}
