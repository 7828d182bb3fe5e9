//! The one thread that runs jobs on the device, one at a time, in the order
//! they arrive, and the queue in front of it: a waiting run is told its
//! place (`Queued`) when it joins and whenever the queue moves.
//!
//! One thread also keeps libtorch's allocations in one allocator arena:
//! with each job on another blocking thread, resident memory grew with every
//! thread a job had run on.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use lens_proto::v1::{explain_event::Event, ExplainEvent, Queued};

use super::live::LiveRun;
use super::metrics::metrics;

type DeviceJob = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct DeviceQueue {
    jobs: mpsc::Sender<DeviceJob>,
    waiting: Arc<Mutex<Waiting>>,
}

#[derive(Default)]
struct Waiting {
    /// Runs whose jobs wait, in the order they will run, with their ids.
    runs: VecDeque<(String, Arc<LiveRun>)>,
    /// Whether a job is on the device now.
    busy: bool,
}

fn lock(waiting: &Mutex<Waiting>) -> MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|e| e.into_inner())
}

fn queued(ahead: usize, id: &str) -> ExplainEvent {
    ExplainEvent {
        event: Some(Event::Queued(Queued {
            ahead: ahead as u32,
            id: id.to_string(),
            owner_secret: String::new(),
        })),
    }
}

impl DeviceQueue {
    pub fn start() -> Self {
        let (jobs, queue) = mpsc::channel::<DeviceJob>();
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let on_thread = waiting.clone();
        std::thread::Builder::new()
            .name("device".into())
            .spawn(move || {
                for job in queue {
                    // Jobs end their runs themselves, panics included; this
                    // only keeps the thread alive for the next one.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    lock(&on_thread).busy = false;
                    metrics().jobs_running.set(0);
                }
            })
            .expect("a thread for the device");
        DeviceQueue { jobs, waiting }
    }

    /// Queues `job` for `run` (shown under `id`); the thread lives as long
    /// as the service.
    pub fn run(&self, id: &str, run: Arc<LiveRun>, job: impl FnOnce() + Send + 'static) {
        let waiting = self.waiting.clone();
        let mine = run.clone();
        let job = move || {
            {
                let mut waiting = lock(&waiting);
                waiting.runs.retain(|(_, r)| !Arc::ptr_eq(r, &mine));
                waiting.busy = true;
                metrics().jobs_waiting.set(waiting.runs.len() as i64);
                metrics().jobs_running.set(1);
                for (place, (id, run)) in waiting.runs.iter().enumerate() {
                    run.publish(queued(place + 1, id));
                }
            }
            job()
        };
        // One lock around the place and the send: the order in the queue is
        // the order on the channel.
        let mut waiting = lock(&self.waiting);
        let ahead = waiting.runs.len() + usize::from(waiting.busy);
        if ahead > 0 {
            run.publish(queued(ahead, id));
        }
        waiting.runs.push_back((id.to_string(), run));
        metrics().jobs_waiting.set(waiting.runs.len() as i64);
        let _ = self.jobs.send(Box::new(job));
    }

    /// Jobs on the device or waiting for it.
    /// Runs `job` on the device thread after the jobs queued so far,
    /// without places in the queue to announce (a short job no one watches).
    pub fn run_unlisted(&self, job: impl FnOnce() + Send + 'static) {
        let waiting = self.waiting.clone();
        let job = move || {
            lock(&waiting).busy = true;
            metrics().jobs_running.set(1);
            job()
        };
        let _ = self.jobs.send(Box::new(job));
    }

    pub fn jobs(&self) -> usize {
        let waiting = lock(&self.waiting);
        waiting.runs.len() + usize::from(waiting.busy)
    }

    /// Runs `work` on the device thread, outside the queue's accounting
    /// (start-up measurements).
    pub fn run_quietly(&self, work: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.send(Box::new(work));
    }
}
