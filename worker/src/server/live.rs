//! Runs in progress that anyone with the link can watch. A run keeps every
//! event it has published; a viewer who joins late gets those first, then
//! the rest as they come. Publishing only clones into each viewer's own
//! unbounded channel, so viewers never hold the computation back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lens_proto::v1::ExplainEvent;
use tokio::sync::mpsc;
use tonic::Status;

use crate::store::RequestKey;

use super::admission::Ticket;

pub type ViewerStream = mpsc::UnboundedReceiver<Result<ExplainEvent, Status>>;
type Viewer = mpsc::UnboundedSender<Result<ExplainEvent, Status>>;

#[derive(Default)]
pub struct LiveRun {
    state: Mutex<RunState>,
    /// The hash of its creator's secret, who may cancel it.
    owner: [u8; 32],
    cancelled: AtomicBool,
}

#[derive(Default)]
struct RunState {
    events: Vec<ExplainEvent>,
    viewers: Vec<Viewer>,
    ended: bool,
    /// Its place among the admitted runs, given back when it ends.
    admission: Option<Ticket>,
}

impl LiveRun {
    fn state(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `event` to every viewer and keeps it for those who join later.
    pub fn publish(&self, event: ExplainEvent) {
        let mut state = self.state();
        state
            .viewers
            .retain(|viewer| viewer.send(Ok(event.clone())).is_ok());
        state.events.push(event);
    }

    /// A stream of everything so far, then the rest live.
    pub fn subscribe(&self) -> ViewerStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.state();
        for event in &state.events {
            let _ = tx.send(Ok(event.clone()));
        }
        if !state.ended {
            state.viewers.push(tx);
        }
        rx
    }

    /// Keeps the run's admission ticket until the run ends.
    pub fn hold(&self, ticket: Ticket) {
        self.state().admission = Some(ticket);
    }

    /// Whether `secret_hash` is its creator's.
    pub fn is_owned_by(&self, secret_hash: &[u8; 32]) -> bool {
        self.owner == *secret_hash
    }

    /// Ends the run for every viewer with CANCELLED; its job stops after
    /// the batch in flight, or does not start.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.end(Some(Status::cancelled(
            "the explanation was cancelled by its creator",
        )));
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Whether anyone still listens (the creator counts as a viewer).
    pub fn has_viewers(&self) -> bool {
        self.state().viewers.iter().any(|v| !v.is_closed())
    }

    /// Ends every viewer's stream, with `error` if the run failed.
    pub fn end(&self, error: Option<Status>) {
        let mut state = self.state();
        if let Some(error) = error {
            for viewer in &state.viewers {
                let _ = viewer.send(Err(error.clone()));
            }
        }
        state.viewers.clear();
        state.ended = true;
        state.admission = None;
    }
}

/// The runs in progress, by share id and by request key.
#[derive(Default)]
pub struct LiveRuns {
    runs: Mutex<HashMap<String, (RequestKey, Arc<LiveRun>)>>,
}

impl LiveRuns {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, (RequestKey, Arc<LiveRun>)>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run of an identical request if one is in progress (false), or a
    /// new run under `id` owned by `owner` (a secret's hash) (true); one
    /// lock, so identical requests never race.
    pub fn join_or_start(
        &self,
        id: &str,
        key: RequestKey,
        owner: [u8; 32],
    ) -> (Arc<LiveRun>, bool) {
        let mut runs = self.runs();
        if let Some((_, run)) = runs.values().find(|(k, _)| *k == key) {
            return (run.clone(), false);
        }
        let run = Arc::new(LiveRun {
            owner,
            ..LiveRun::default()
        });
        runs.insert(id.to_string(), (key, run.clone()));
        (run, true)
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.runs().get(id).map(|(_, run)| run.clone())
    }

    pub fn remove(&self, id: &str) {
        self.runs().remove(id);
    }

    /// Ends every run in progress with `status` (their jobs stop after the
    /// batch in flight, having no viewers left).
    pub fn end_all(&self, status: Status) {
        for (_, (_, run)) in self.runs().drain() {
            run.end(Some(status.clone()));
        }
    }
}
