//! Reading an explanation's event stream, for the page and the comparison
//! view alike: each event to a callback until `Finished`, the callback
//! stops, or the stream fails or ends early.

use std::ops::ControlFlow;

use lens_proto::v1::{explain_event::Event, ExplainEvent};
use tonic::{Status, Streaming};

/// How a stream that did not fail ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Finished,
    /// The callback asked to stop (a newer run took over).
    Stopped,
}

pub async fn each_event(
    mut stream: Streaming<ExplainEvent>,
    mut on_event: impl FnMut(Event) -> ControlFlow<()>,
) -> Result<End, Status> {
    loop {
        let Some(message) = stream.message().await? else {
            return Err(Status::unknown(
                "the worker ended the stream before the explanation finished",
            ));
        };
        let Some(event) = message.event else {
            continue;
        };
        let finished = matches!(event, Event::Finished(_));
        if on_event(event).is_break() {
            return Ok(End::Stopped);
        }
        if finished {
            return Ok(End::Finished);
        }
    }
}
