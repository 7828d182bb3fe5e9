//! Runs in progress that anyone with the link can watch.
//!
//! Everything is bounded. A run keeps what a late viewer needs, not its
//! history: its place in the queue, `Started`, the coarse map and the final
//! values so far, which a late viewer receives as a few compact tiles (whole
//! bands of the image as one tile) before the rest live. Each viewer has a
//! buffer of `Limits::viewer_buffer` events; a viewer that falls that far
//! behind is dropped with a clear status and never slows the run. A run has
//! at most `Limits::viewers_per_run` viewers. Publishing hands each viewer a
//! shared reference to the event; copies are made on the viewers' tasks.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lens_proto::v1::{explain_event::Event, ExplainEvent, Tile};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::Status;

use lens_store::RequestKey;

use super::admission::{Limits, Ticket};
use super::limits::{Limit, LocalPlace};
use super::metrics::{metrics, Counted};
use super::status::{ServiceError, CANCELLED_BY_CREATOR, REPLACED_BY_NEWER};

type SharedEvent = Arc<Result<ExplainEvent, Status>>;

struct Viewer {
    events: mpsc::Sender<SharedEvent>,
    /// Set when the viewer fell behind and was dropped.
    dropped: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct LiveRun {
    id: String,
    state: Mutex<RunState>,
    /// The hash of its creator's secret, who may cancel it.
    owner: [u8; 32],
    cancelled: AtomicBool,
    limits: Limits,
}

#[derive(Default)]
struct RunState {
    queued: Option<ExplainEvent>,
    started: Option<ExplainEvent>,
    coarse: Option<ExplainEvent>,
    /// Final tiles so far (at most the image's values in all).
    tiles: Vec<Tile>,
    /// The other classes' maps (after the last tile).
    class_maps: Vec<ExplainEvent>,
    finished: Option<ExplainEvent>,
    viewers: Vec<Viewer>,
    ended: bool,
    /// Why it ended, when it failed or was cancelled: a viewer who joins
    /// between its end and its leaving the live table hears it too.
    failure: Option<Status>,
    /// Its place among the admitted runs, given back when it ends.
    admission: Option<Ticket>,
}

impl RunState {
    /// What a viewer who joins now receives first.
    fn so_far(&self) -> Vec<ExplainEvent> {
        let width = self
            .started
            .as_ref()
            .and_then(|e| match &e.event {
                Some(Event::Started(s)) => s.input.as_ref().map(|i| i.width),
                _ => None,
            })
            .unwrap_or(0);
        let tiles = compact(&self.tiles, width)
            .into_iter()
            .map(|tile| ExplainEvent {
                event: Some(Event::Tile(tile)),
            });
        let before = [&self.queued, &self.started, &self.coarse];
        before
            .into_iter()
            .flatten()
            .cloned()
            .chain(tiles)
            .chain(self.class_maps.iter().cloned())
            .chain(self.finished.clone())
            .collect()
    }
}

/// Final tiles merged where they can be: the tiles of a band of rows that
/// covers the whole width become one tile, and neighbouring whole bands
/// one tile again. Tiles of a band still in progress stay as they are.
fn compact(tiles: &[Tile], width: u32) -> Vec<Tile> {
    let mut bands: Vec<(u32, u32, Vec<&Tile>)> = Vec::new();
    for tile in tiles {
        match bands
            .iter_mut()
            .find(|(y, h, _)| *y == tile.y && *h == tile.height)
        {
            Some(band) => band.2.push(tile),
            None => bands.push((tile.y, tile.height, vec![tile])),
        }
    }
    bands.sort_by_key(|b| b.0);
    let mut out: Vec<Tile> = Vec::new();
    for (y, height, mut parts) in bands {
        parts.sort_by_key(|t| t.x);
        let whole = parts.first().is_some_and(|t| t.x == 0)
            && parts.windows(2).all(|p| p[0].x + p[0].width == p[1].x)
            && parts.last().is_some_and(|t| t.x + t.width == width);
        if !whole {
            out.extend(parts.into_iter().cloned());
            continue;
        }
        let windows_done = parts.iter().map(|t| t.windows_done).max().unwrap_or(0);
        let mut values = Vec::with_capacity((width * height) as usize);
        for row in 0..height as usize {
            for part in &parts {
                let w = part.width as usize;
                values.extend_from_slice(&part.values[row * w..(row + 1) * w]);
            }
        }
        // Joined to the band above when that one is whole and ends here.
        match out.last_mut() {
            Some(above) if above.x == 0 && above.width == width && above.y + above.height == y => {
                above.height += height;
                above.values.extend(values);
                above.windows_done = above.windows_done.max(windows_done);
            }
            _ => out.push(Tile {
                x: 0,
                y,
                width,
                height,
                values,
                windows_done,
                total_windows: parts[0].total_windows,
                coarse: false,
            }),
        }
    }
    out
}

impl LiveRun {
    fn state(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `event` to every viewer (dropping those whose buffer is full)
    /// and keeps what a late viewer needs of it.
    pub fn publish(&self, event: ExplainEvent) {
        let mut state = self.state();
        match &event.event {
            Some(Event::Queued(_)) => state.queued = Some(event.clone()),
            Some(Event::Started(_)) => state.started = Some(event.clone()),
            Some(Event::Tile(tile)) if tile.coarse => state.coarse = Some(event.clone()),
            Some(Event::Tile(tile)) => state.tiles.push(tile.clone()),
            Some(Event::ClassMap(_)) => state.class_maps.push(event.clone()),
            Some(Event::Finished(_)) => state.finished = Some(event.clone()),
            // One process runs the whole run: nothing moves.
            Some(Event::Moved(_)) | None => {}
        }
        let shared: SharedEvent = Arc::new(Ok(event));
        state
            .viewers
            .retain(|viewer| match viewer.events.try_send(shared.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    viewer.dropped.store(true, Ordering::SeqCst);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// A stream of the run so far (compact), then the rest live; refused
    /// when the run has as many viewers as it may.
    pub fn subscribe(&self, watch: Vec<LocalPlace>) -> Result<ViewerStream, ServiceError> {
        let mut state = self.state();
        state.viewers.retain(|v| !v.events.is_closed());
        // The run's own list of viewers is where they are counted.
        let limit = Limit::viewers(self.limits.viewers_per_run, &self.id);
        if state.viewers.len() >= limit.most() {
            return Err(limit.refusal());
        }
        let so_far = state.so_far();
        let failure = usize::from(state.failure.is_some());
        let (events, receiver) =
            mpsc::channel(so_far.len() + failure + self.limits.viewer_buffer.max(1));
        for event in so_far {
            let _ = events.try_send(Arc::new(Ok(event)));
        }
        if let Some(failure) = &state.failure {
            let _ = events.try_send(Arc::new(Err(failure.clone())));
        }
        let dropped = Arc::new(AtomicBool::new(false));
        if !state.ended {
            state.viewers.push(Viewer {
                events,
                dropped: dropped.clone(),
            });
        }
        Ok(ViewerStream {
            receiver,
            dropped,
            told: false,
            _watch: watch,
            _counted: Counted::new(&metrics().live_viewers),
        })
    }

    /// The hash of its creator's secret.
    pub fn owner(&self) -> [u8; 32] {
        self.owner
    }

    /// Keeps the run's admission ticket until the run ends.
    pub fn hold(&self, ticket: Ticket) {
        self.state().admission = Some(ticket);
    }

    /// Ends the run for every viewer with CANCELLED; its job stops after
    /// the batch in flight, or does not start.
    pub fn cancel(&self) {
        self.cancel_because(CANCELLED_BY_CREATOR);
    }

    /// Cancels a run still waiting that a newer run of its browser replaces.
    pub fn replace(&self) {
        self.cancel_because(REPLACED_BY_NEWER);
    }

    fn cancel_because(&self, why: &str) {
        // Viewers hear CANCELLED before the job may see the flag: a job
        // that stops first ends the run without a status otherwise.
        self.end(Some(Status::cancelled(why)));
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Viewers still listening (the creator counts).
    pub fn viewers(&self) -> usize {
        let state = self.state();
        state
            .viewers
            .iter()
            .filter(|v| !v.events.is_closed())
            .count()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Whether the run has ended (it may still be in the live table for a
    /// moment).
    pub fn has_ended(&self) -> bool {
        self.state().ended
    }

    /// Whether anyone still listens (the creator counts as a viewer).
    pub fn has_viewers(&self) -> bool {
        self.state().viewers.iter().any(|v| !v.events.is_closed())
    }

    /// Ends every viewer's stream, with `error` if the run failed; the
    /// first end holds (a job that stops after a cancel ends it again).
    pub fn end(&self, error: Option<Status>) {
        let mut state = self.state();
        if state.ended {
            return;
        }
        if let Some(error) = &error {
            let shared: SharedEvent = Arc::new(Err(error.clone()));
            for viewer in &state.viewers {
                // A full buffer has been marked: its viewer hears why.
                if viewer.events.try_send(shared.clone()).is_err() {
                    viewer.dropped.store(true, Ordering::SeqCst);
                }
            }
        }
        state.viewers.clear();
        state.ended = true;
        state.failure = error;
        state.admission = None;
    }
}

/// One viewer's events; after its buffer overflowed, the events it still
/// holds and then a status that says why it ends.
pub struct ViewerStream {
    receiver: mpsc::Receiver<SharedEvent>,
    dropped: Arc<AtomicBool>,
    told: bool,
    /// This client's place among its `Watch` streams, while it watches.
    _watch: Vec<LocalPlace>,
    _counted: Counted,
}

impl Stream for ViewerStream {
    type Item = Result<ExplainEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(shared)) => Poll::Ready(Some(Arc::unwrap_or_clone(shared))),
            Poll::Ready(None) if self.dropped.load(Ordering::SeqCst) && !self.told => {
                self.told = true;
                Poll::Ready(Some(Err(Status::aborted(
                    "this viewer fell too far behind the explanation and was dropped: \
                     open the link again to catch up",
                ))))
            }
            other => other.map(|_| None),
        }
    }
}

/// The runs in progress, by share id and by request key.
#[derive(Default)]
pub struct LiveRuns {
    runs: Mutex<HashMap<String, (RequestKey, Arc<LiveRun>)>>,
    limits: Limits,
}

impl LiveRuns {
    pub fn new(limits: Limits) -> Self {
        LiveRuns {
            runs: Mutex::default(),
            limits,
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, (RequestKey, Arc<LiveRun>)>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run of an identical request if one is in progress (false), or a
    /// new run under `id` owned by `owner` (a secret's hash) (true); one
    /// lock, so identical requests never race. A run that has just ended
    /// (failed, say) but not yet left the table is not joined.
    pub fn join_or_start(
        &self,
        id: &str,
        key: RequestKey,
        owner: [u8; 32],
    ) -> (Arc<LiveRun>, bool) {
        let mut runs = self.runs();
        if let Some((_, run)) = runs.values().find(|(k, run)| *k == key && !run.has_ended()) {
            return (run.clone(), false);
        }
        let run = Arc::new(LiveRun {
            id: id.to_string(),
            owner,
            limits: self.limits,
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

#[cfg(test)]
mod tests {
    use super::*;
    use lens_proto::v1::Started;
    use tokio_stream::StreamExt;

    fn tile(x: u32, y: u32, size: u32, done: u64) -> ExplainEvent {
        ExplainEvent {
            event: Some(Event::Tile(Tile {
                x,
                y,
                width: size,
                height: size,
                values: (0..size * size).map(|i| (y * 100 + x + i) as f32).collect(),
                windows_done: done,
                total_windows: 100,
                coarse: false,
            })),
        }
    }

    fn started(width: u32) -> ExplainEvent {
        ExplainEvent {
            event: Some(Event::Started(Started {
                input: Some(lens_proto::v1::Picture {
                    width,
                    height: width,
                    ..Default::default()
                }),
                ..Default::default()
            })),
        }
    }

    fn run_with(limits: Limits) -> LiveRun {
        LiveRun {
            limits,
            ..LiveRun::default()
        }
    }

    /// A run that failed but has not yet left the table (the moment between
    /// `end` and `remove`): an identical request starts afresh, and one who
    /// watches it by id hears the failure.
    #[tokio::test]
    async fn a_failed_run_is_not_joined_and_a_late_viewer_hears_why() {
        let runs = LiveRuns::new(Limits::default());
        let key = [7u8; 32];
        let (failed, is_new) = runs.join_or_start("first", key, [0; 32]);
        assert!(is_new);
        failed.publish(started(8));
        failed.end(Some(Status::internal("the model failed")));
        let (again, is_new) = runs.join_or_start("second", key, [0; 32]);
        assert!(is_new, "an identical request must not join the failed run");
        assert!(!Arc::ptr_eq(&failed, &again));
        let events: Vec<_> = failed.subscribe(Vec::new()).unwrap().collect().await;
        assert_eq!(events.len(), 2, "what it had, then why it ended");
        assert!(events[0].is_ok());
        assert_eq!(
            events[1].as_ref().unwrap_err().message(),
            "the model failed"
        );
    }

    /// A job that stops because its run was cancelled ends the run again
    /// without a status; its viewers must still hear CANCELLED.
    #[tokio::test]
    async fn a_cancelled_run_stays_cancelled_when_its_job_ends_it() {
        let run = run_with(Limits::default());
        run.publish(started(8));
        let viewer = run.subscribe(Vec::new()).unwrap();
        run.cancel();
        assert!(run.is_cancelled());
        run.end(None);
        let events: Vec<_> = viewer.collect().await;
        assert_eq!(
            events.last().unwrap().as_ref().unwrap_err().code(),
            tonic::Code::Cancelled
        );
        let late: Vec<_> = run.subscribe(Vec::new()).unwrap().collect().await;
        assert_eq!(
            late.last().unwrap().as_ref().unwrap_err().code(),
            tonic::Code::Cancelled
        );
    }

    /// Every value of the tiles, by pixel (an 8 x 8 image).
    fn pixels(tiles: &[Tile]) -> Vec<Option<f32>> {
        let mut map = vec![None; 64];
        for t in tiles {
            for row in 0..t.height {
                for col in 0..t.width {
                    let i = ((t.y + row) * 8 + t.x + col) as usize;
                    assert!(map[i].is_none(), "covered twice");
                    map[i] = Some(t.values[(row * t.width + col) as usize]);
                }
            }
        }
        map
    }

    #[tokio::test]
    async fn a_late_viewer_gets_the_map_so_far_in_a_few_tiles() {
        let run = run_with(Limits::default());
        run.publish(started(8));
        // Two whole bands of 4 x 4 tiles on an 8 x 8 image, and one tile of
        // the third (in schedule order: row by row).
        let published: Vec<Tile> = [(0, 0), (4, 0), (0, 4), (4, 4)]
            .into_iter()
            .enumerate()
            .map(|(i, (x, y))| match tile(x, y, 4, i as u64 + 1).event {
                Some(Event::Tile(t)) => t,
                _ => unreachable!(),
            })
            .collect();
        for t in &published[..3] {
            run.publish(ExplainEvent {
                event: Some(Event::Tile(t.clone())),
            });
        }
        let late: Vec<_> = run.subscribe(Vec::new()).unwrap().take(3).collect().await;
        let tiles: Vec<Tile> = late
            .into_iter()
            .filter_map(|e| match e.unwrap().event {
                Some(Event::Tile(t)) => Some(t),
                _ => None,
            })
            .collect();
        // The first band as one tile, the lone tile of the second as is.
        assert_eq!(tiles.len(), 2);
        assert_eq!((tiles[0].width, tiles[0].height), (8, 4));
        assert_eq!(tiles[0].windows_done, 2);
        assert_eq!(pixels(&tiles), pixels(&published[..3]));
        // With the last tile, one tile holds the whole map.
        let whole = compact(&published, 8);
        assert_eq!(whole.len(), 1);
        assert_eq!(pixels(&whole), pixels(&published));
    }

    #[tokio::test]
    async fn a_viewer_that_falls_behind_is_dropped_and_told_why() {
        let run = run_with(Limits {
            viewer_buffer: 3,
            ..Limits::default()
        });
        let mut slow = run.subscribe(Vec::new()).unwrap();
        let mut keeping_up = run.subscribe(Vec::new()).unwrap();
        run.publish(started(8));
        for i in 0..6 {
            run.publish(tile(0, 0, 1, i));
            // This one reads as the run goes.
            keeping_up.next().await.unwrap().unwrap();
        }
        keeping_up.next().await.unwrap().unwrap();
        assert!(run.has_viewers(), "the viewer keeping up is still there");
        // The slow one gets what its buffer held, then the reason.
        let mut got = Vec::new();
        while let Some(item) = slow.next().await {
            got.push(item);
        }
        assert_eq!(got.len(), 4);
        let status = got.pop().unwrap().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(status.message().contains("fell too far behind"));
    }

    #[test]
    fn a_run_takes_so_many_viewers() {
        let run = run_with(Limits {
            viewers_per_run: 2,
            ..Limits::default()
        });
        let _first = run.subscribe(Vec::new()).unwrap();
        let second = run.subscribe(Vec::new()).unwrap();
        assert!(matches!(
            run.subscribe(Vec::new()),
            Err(ServiceError::TooManyViewers { limit: 2 })
        ));
        // A viewer who left makes room.
        drop(second);
        assert!(run.subscribe(Vec::new()).is_ok());
    }
}
