//! Classes on the page: a teacher opens one and shows its code and a QR
//! code of its link; students who open the link follow what the teacher
//! shows, may explore on their own, and return with one click. The class's
//! link is the page's address with `join=CODE`; the teacher's secret stays
//! in the teacher's browser, so a reload on either side rejoins the class.

use lens_proto::v1::{ClassEvent, FollowClassRequest};
use leptos::prelude::*;
use qrcode::render::svg;
use qrcode::QrCode;

use crate::client;
use crate::link;

/// This page's part in a class.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    Teacher { code: String, secret: String },
    Student { code: String },
}

impl Role {
    pub fn code(&self) -> &str {
        match self {
            Role::Teacher { code, .. } | Role::Student { code } => code,
        }
    }

    /// The role this browser has in the class `code`: the teacher if it
    /// opened it.
    pub fn for_code(code: &str) -> Role {
        match link::CLASSES.get(code) {
            Some(secret) => Role::Teacher {
                code: code.to_string(),
                secret,
            },
            None => Role::Student {
                code: code.to_string(),
            },
        }
    }
}

/// The link students open (and the QR code holds).
pub fn class_link(code: &str) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}/?join={code}")
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

/// Follows the class until it ends or `still_wanted` says stop; every
/// event goes to `on_event`. Errors (an unknown code, a dropped
/// connection) go to `on_error`.
pub async fn follow(
    role: Role,
    still_wanted: impl Fn() -> bool,
    on_event: impl Fn(ClassEvent),
    on_error: impl Fn(String),
) {
    let request = FollowClassRequest {
        code: role.code().to_string(),
        teacher_secret: match &role {
            Role::Teacher { secret, .. } => secret.clone(),
            Role::Student { .. } => String::new(),
        },
    };
    let mut stream = match client::worker().follow_class(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return on_error(client::readable(&status)),
    };
    loop {
        match stream.message().await {
            Ok(Some(event)) if still_wanted() => {
                let ended = event.ended;
                on_event(event);
                if ended {
                    return;
                }
            }
            Ok(_) => return,
            Err(status) => return on_error(client::readable(&status)),
        }
    }
}

/// The teacher's panel: the code, the QR code of the link, how many follow.
#[component]
pub fn TeacherPanel(
    code: String,
    #[prop(into)] followers: Signal<u32>,
    close: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let link = class_link(&code);
    let qr = qr_svg(&link);
    view! {
        <div class="class-panel" data-testid="class-panel">
            <div class="qr" data-testid="class-qr" data-link=link.clone() inner_html=qr></div>
            <div>
                <p class="class-code">"Class code "<strong data-testid="class-code">{code}</strong></p>
                <p class="class-link">{link}</p>
                <p data-testid="followers">
                    {move || match followers.get() {
                        1 => "1 student following".to_string(),
                        n => format!("{n} students following"),
                    }}
                </p>
                <button data-testid="close-class" on:click=move |_| close()>"Close the class"</button>
            </div>
        </div>
    }
}

/// A student's banner: following the teacher, or exploring with a way back.
#[component]
pub fn StudentBanner(
    code: String,
    #[prop(into)] following: Signal<bool>,
    #[prop(into)] ended: Signal<bool>,
    follow_again: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="class-banner" data-testid="class-banner"
            data-following=move || following.get().to_string()>
            {move || {
                if ended.get() {
                    format!("The class {code} has ended.")
                } else if following.get() {
                    format!("Following class {code}: you see what the teacher shows.")
                } else {
                    format!("Exploring on your own (class {code}).")
                }
            }}
            <Show when=move || !following.get() && !ended.get()>
                <button data-testid="follow-again" on:click=move |_| follow_again()>
                    "Follow the teacher again"
                </button>
            </Show>
        </div>
    }
}
