//! Classes: a teacher opens one; students who open its link follow what
//! the teacher shows, may explore on their own, and return with one click.
//! The class's link is the page's address with `join=TOKEN` (a long random
//! token; `join=CODE` with the typed six-letter code works too); the
//! teacher's secret stays in the teacher's browser, so a reload on either
//! side rejoins the class. Closing may delete the explanations the teacher
//! made in it. This module keeps the store and the class in step (the
//! page's part in it, `Role`, is in the store); `panels::classroom` shows
//! it.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::class_maps::MapView;
use crate::domain::TeacherView;
use crate::link;
use crate::run;
use crate::state::{Page, Role};

/// The link students open (and the QR code holds): with the class's link
/// token, which nobody guesses.
pub fn class_link(code: &str) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    let token = link::CLASS_LINKS
        .get(code)
        .unwrap_or_else(|| code.to_string());
    format!("{origin}/?join={token}")
}

/// Notes that the teacher showed `id` in class `code`, when this browser
/// made it (so closing the class may delete it).
fn note_class_run(code: &str, id: &str) {
    if id.is_empty() || link::EXPLANATIONS.get(id).is_none() {
        return;
    }
    let mut ids = link::CLASS_RUNS.get(code).unwrap_or_default();
    if !ids.split(' ').any(|known| known == id) {
        if !ids.is_empty() {
            ids.push(' ');
        }
        ids.push_str(id);
        link::CLASS_RUNS.remember(code, &ids);
    }
}

/// Follows the class's stream (the teacher's page too, for the count)
/// until it ends or a newer one replaces it.
fn start_following(page: Page, role: Role) {
    let class = page.class;
    let this = class.streams.get_untracked() + 1;
    class.streams.set(this);
    class.ended.set(false);
    let secret = match &role {
        Role::Teacher { secret, .. } => secret.clone(),
        Role::Student { .. } => String::new(),
    };
    let code = role.code().to_string();
    spawn_local(async move {
        let still_wanted = move || class.streams.get_untracked() == this;
        let mut feed = match api::follow_class(code, secret).await {
            Ok(feed) => feed,
            Err(message) => return page.notice.set(Some(message)),
        };
        loop {
            match feed.next().await {
                Ok(Some(news)) if still_wanted() => {
                    if !news.code.is_empty() {
                        class.code.set(Some(news.code));
                    }
                    class.followers.set(news.followers);
                    class.ended.set(news.ended);
                    if news.view.is_some() {
                        class.view.set(news.view);
                    }
                    if news.ended {
                        return;
                    }
                }
                Ok(_) => return,
                Err(message) => return page.notice.set(Some(message)),
            }
        }
    });
}

/// Joins the address's class, then keeps both sides in step: a following
/// student's page takes on every setting the teacher shows and watches the
/// teacher's explanation; the teacher's page tells the class what it shows,
/// as it changes.
pub fn keep_in_step(page: Page) {
    let class = page.class;
    if let Some(role) = class.role.get_untracked() {
        start_following(page, role);
    }
    Effect::new(move |_| {
        let Some(view) = class.view.get() else {
            return;
        };
        if !class.is_student() || !class.following.get() {
            return;
        }
        page.settings.set(&view.settings);
        // The map the teacher shows (another class's, a contrast).
        page.display.map_view.set(MapView::from_link(&view.see));
        let id = view.explanation;
        if !id.is_empty() && page.shown.share_id.get_untracked().as_deref() != Some(id.as_str()) {
            run::watch(page, id);
        }
    });
    Effect::new(move |_| {
        let Some(Role::Teacher { code, secret }) = class.role.get() else {
            return;
        };
        let view = TeacherView {
            explanation: page.shown.share_id.get().unwrap_or_default(),
            settings: page.settings.get(),
            see: page.display.map_view.get().to_link().unwrap_or_default(),
        };
        note_class_run(&code, &view.explanation);
        spawn_local(async move {
            if let Err(message) = api::teach(code, secret, view).await {
                page.notice.set(Some(message));
            }
        });
    });
}

pub fn open_class(page: Page) {
    spawn_local(async move {
        match api::open_class().await {
            Ok(opened) => {
                link::CLASSES.remember(&opened.code, &opened.secret);
                link::CLASS_LINKS.remember(&opened.code, &opened.link_token);
                let role = Role::Teacher {
                    code: opened.code,
                    secret: opened.secret,
                };
                page.class.role.set(Some(role.clone()));
                start_following(page, role);
            }
            Err(message) => page.notice.set(Some(message)),
        }
    });
}

/// Ends the class for everyone; with `delete_runs`, the explanations this
/// browser made and showed in it are deleted first.
pub fn close_class(page: Page, delete_runs: bool) {
    let Some(Role::Teacher { code, secret }) = page.class.role.get_untracked() else {
        return;
    };
    spawn_local(async move {
        let mut deleted = 0;
        if delete_runs {
            let ids = link::CLASS_RUNS.get(&code).unwrap_or_default();
            for id in ids.split(' ').filter(|id| !id.is_empty()) {
                let Some(owner_secret) = link::EXPLANATIONS.get(id) else {
                    continue;
                };
                match api::delete(id.to_string(), owner_secret).await {
                    Ok(()) => {
                        link::EXPLANATIONS.forget(id);
                        deleted += 1;
                    }
                    Err(message) => return page.notice.set(Some(message)),
                }
            }
        }
        match api::close_class(code.clone(), secret).await {
            Ok(()) => {
                for kept in [link::CLASSES, link::CLASS_LINKS, link::CLASS_RUNS] {
                    kept.forget(&code);
                }
                page.class.streams.update(|n| *n += 1);
                page.class.role.set(None);
                page.notice.set(Some(match deleted {
                    0 => format!("The class {code} is closed."),
                    1 => format!("The class {code} is closed and its explanation deleted."),
                    n => format!("The class {code} is closed and its {n} explanations deleted."),
                }));
            }
            Err(message) => page.notice.set(Some(message)),
        }
    });
}
