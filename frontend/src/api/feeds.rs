//! The two streams the worker sends, read as the page's own events: a
//! run's and a followed class's.

use std::ops::ControlFlow;

use lens_proto::v1 as wire;
use tonic::{Code, Streaming};

use super::convert::{method_from_wire, readable, run_event, said};
use crate::domain::{ClassNews, RunSettings, TeacherView};
use crate::events::{Broken, End, RunEvent};

/// A followed class's events, as the page's own.
pub struct ClassFeed(pub(super) Streaming<wire::ClassEvent>);

impl ClassFeed {
    pub async fn next(&mut self) -> Result<Option<ClassNews>, String> {
        let Some(event) = self.0.message().await.map_err(said)? else {
            return Ok(None);
        };
        let view = event.view.map(|v| TeacherView {
            see: v.see.clone(),
            explanation: v.explanation_id.clone(),
            settings: RunSettings {
                model: v.model.clone(),
                method: method_from_wire(v.method),
                window: v.window,
                stride: v.stride,
                samples: v.samples,
                class: v.class_index,
                budget: v.budget.unwrap_or(1.0),
            },
        });
        Ok(Some(ClassNews {
            view,
            followers: event.followers,
            ended: event.ended,
            code: event.code,
        }))
    }
}

/// A run's events, as the page's own.
pub struct RunFeed(pub(super) Streaming<wire::ExplainEvent>);

impl RunFeed {
    /// The next event; None when the stream ended.
    pub async fn next(&mut self) -> Result<Option<RunEvent>, Broken> {
        loop {
            let message = self.0.message().await.map_err(|status| Broken {
                cancelled: status.code() == Code::Cancelled,
                message: readable(&status),
            })?;
            let Some(message) = message else {
                return Ok(None);
            };
            if let Some(event) = message.event {
                return Ok(Some(run_event(event)));
            }
        }
    }
}

/// Reads a run's events, for the page and the comparison view alike: each
/// event to a callback until `Finished`, the callback stops, or the stream
/// fails or ends early.
pub async fn each_event(
    mut feed: RunFeed,
    mut on_event: impl FnMut(RunEvent) -> ControlFlow<()>,
) -> Result<End, Broken> {
    loop {
        let Some(event) = feed.next().await? else {
            return Err(Broken {
                message: "The worker ended the stream before the explanation finished.".into(),
                cancelled: false,
            });
        };
        let finished = matches!(event, RunEvent::Finished(_));
        if on_event(event).is_break() {
            return Ok(End::Stopped);
        }
        if finished {
            return Ok(End::Finished);
        }
    }
}
