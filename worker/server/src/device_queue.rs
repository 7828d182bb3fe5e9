//! The one thread that runs jobs on the device, one at a time, and the fair
//! queue in front of it. Clients (browsers, else addresses) are served in
//! turn: a client's n-th waiting job goes into round n, and rounds run in
//! order, each in the order its jobs arrived, so one browser's five runs
//! do not stand before thirty classmates' first. A browser's new run takes
//! the place of its own run still waiting (a new stroke replaces the last
//! one, `take_place`) unless somebody else watches that one. A waiting run is told how
//! many other clients' jobs are ahead of it (`Queued`) when it joins and
//! whenever that changes.
//!
//! One thread also keeps libtorch's allocations in one allocator arena:
//! with each job on another blocking thread, resident memory grew with every
//! thread a job had run on.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use lens_proto::v1::{explain_event::Event, ExplainEvent, Queued};

use super::client::Client;
use super::live::LiveRun;
use super::metrics::metrics;

type DeviceJob = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct DeviceQueue {
    shared: Arc<Shared>,
}

struct Shared {
    waiting: Mutex<Waiting>,
    arrived: Condvar,
}

#[derive(Default)]
struct Waiting {
    jobs: Vec<Waiter>,
    /// The client whose job is on the device now, if one is.
    running: Option<String>,
    /// The round of the job taken last.
    round: u64,
    /// Each client's latest round with a job waiting or running.
    last_round: HashMap<String, u64>,
    arrivals: u64,
}

struct Waiter {
    /// The place in the queue: lower first.
    round: u64,
    arrival: u64,
    client: String,
    /// A run whose place is announced (`None`: a job nobody sees queue).
    listed: Option<Listed>,
    job: DeviceJob,
}

/// A place in the queue, handed from a browser's replaced run to its newer
/// one.
pub struct Place {
    round: u64,
    arrival: u64,
}

struct Listed {
    id: String,
    run: Arc<LiveRun>,
    /// The jobs ahead it was told last.
    told: Option<usize>,
    /// Whether a newer run of its browser may take its place.
    replaceable: bool,
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

/// Whether a job is a start-up measurement (`run_quietly`): nobody's, never
/// ahead of a run and not an explanation.
fn is_quiet(name: &str) -> bool {
    name.is_empty()
}

/// Whether a client's name (`Client::name`) is a browser's (an address's
/// name has no second dot).
fn is_browser(name: &str) -> bool {
    name.starts_with("c.b.")
}

impl Waiting {
    /// The round a new job of `client` goes into.
    fn round_for(&self, client: &str) -> u64 {
        match self.last_round.get(client) {
            Some(last) => self.round.max(last + 1),
            None => self.round,
        }
    }

    fn add(&mut self, client: String, listed: Option<Listed>, job: DeviceJob) {
        let round = self.round_for(&client);
        self.last_round.insert(client.clone(), round);
        self.arrivals += 1;
        self.jobs.push(Waiter {
            round,
            arrival: self.arrivals,
            client,
            listed,
            job,
        });
    }

    /// The next job: the earliest arrival of the lowest round.
    fn take_next(&mut self) -> Option<Waiter> {
        let next =
            (0..self.jobs.len()).min_by_key(|&i| (self.jobs[i].round, self.jobs[i].arrival))?;
        let waiter = self.jobs.remove(next);
        self.round = self.round.max(waiter.round);
        self.running = Some(waiter.client.clone()).filter(|c| !is_quiet(c));
        let round = self.round;
        self.last_round.retain(|_, last| *last >= round);
        Some(waiter)
    }

    /// The jobs ahead of a job of `client` at place `at` (round, arrival),
    /// the one on the device included: a browser's own are not counted (a
    /// client without a browser id may be several programs: all count).
    fn others_ahead(&self, client: &str, at: (u64, u64)) -> usize {
        let others = |c: &str| !is_quiet(c) && (c != client || !is_browser(client));
        let running = self.running.as_deref().is_some_and(others);
        let waiting = self
            .jobs
            .iter()
            .filter(|w| others(&w.client) && (w.round, w.arrival) < at)
            .count();
        waiting + usize::from(running)
    }

    /// Tells each listed run its place where it changed.
    fn announce(&mut self) {
        let places: Vec<usize> = self
            .jobs
            .iter()
            .map(|w| self.others_ahead(&w.client, (w.round, w.arrival)))
            .collect();
        let idle = self.running.is_none();
        for (waiter, ahead) in self.jobs.iter_mut().zip(places) {
            if let Some(listed) = &mut waiter.listed {
                // A job first in line on an idle device starts at once.
                let starts_now = idle && ahead == 0 && listed.told.is_none();
                if listed.told != Some(ahead) && !starts_now {
                    listed.told = Some(ahead);
                    listed.run.publish(queued(ahead, &listed.id));
                }
            }
        }
        // Start-up measurements are nobody's explanations: not counted.
        let explanations = self.jobs.iter().filter(|w| !is_quiet(&w.client)).count();
        metrics().jobs_waiting.set(explanations as i64);
    }

    /// Takes `client`'s waiting run that a newer one may replace: its place
    /// in the queue and its job.
    fn take_replaceable(&mut self, client: &str) -> Option<Waiter> {
        let mine = self.jobs.iter().position(|w| {
            w.client == client
                && w.listed
                    .as_ref()
                    .is_some_and(|l| l.replaceable && l.run.viewers() <= 1)
        })?;
        Some(self.jobs.remove(mine))
    }
}

impl DeviceQueue {
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            waiting: Mutex::default(),
            arrived: Condvar::new(),
        });
        let on_thread = shared.clone();
        std::thread::Builder::new()
            .name("device".into())
            .spawn(move || loop {
                let job = {
                    let waiting = on_thread.lock();
                    let mut waiting = on_thread
                        .arrived
                        .wait_while(waiting, |w| w.jobs.is_empty())
                        .unwrap_or_else(|e| e.into_inner());
                    let next = waiting.take_next().expect("a job, having waited for one");
                    waiting.announce();
                    metrics()
                        .jobs_running
                        .set(i64::from(waiting.running.is_some()));
                    next.job
                };
                // Jobs end their runs themselves, panics included; this
                // only keeps the thread alive for the next one.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                on_thread.lock().running = None;
                metrics().jobs_running.set(0);
            })
            .expect("a thread for the device");
        DeviceQueue { shared }
    }

    fn push(&self, client: String, listed: Option<Listed>, job: DeviceJob) {
        let mut waiting = self.shared.lock();
        waiting.add(client, listed, job);
        waiting.announce();
        self.shared.arrived.notify_one();
    }

    /// Ends `client`'s waiting run that a newer run of the same browser may
    /// replace (one only its creator watches) and hands over its place in
    /// the queue; `None` when it has none. The ended run's job runs here and
    /// now: its run has ended, so it stops before the model and only leaves
    /// the live table.
    pub fn take_place(&self, client: &Client) -> Option<Place> {
        client.browser.as_ref()?;
        let mut waiting = self.shared.lock();
        let old = waiting.take_replaceable(&client.name())?;
        if let Some(listed) = &old.listed {
            listed.run.replace();
        }
        // Places are announced again when the newer run takes this one.
        drop(waiting);
        (old.job)();
        Some(Place {
            round: old.round,
            arrival: old.arrival,
        })
    }

    /// Queues `job` for `run` (shown under `id`) of `client`, in `place`
    /// (taken from the browser's replaced run) or at the end of its turn.
    pub fn run(
        &self,
        id: &str,
        run: Arc<LiveRun>,
        client: &Client,
        place: Option<Place>,
        job: impl FnOnce() + Send + 'static,
    ) {
        let listed = Listed {
            id: id.to_string(),
            run,
            told: None,
            replaceable: client.browser.is_some(),
        };
        let mut waiting = self.shared.lock();
        match place {
            Some(Place { round, arrival }) => waiting.jobs.push(Waiter {
                round,
                arrival,
                client: client.name(),
                listed: Some(listed),
                job: Box::new(job),
            }),
            None => waiting.add(client.name(), Some(listed), Box::new(job)),
        }
        waiting.announce();
        self.shared.arrived.notify_one();
    }

    /// Runs `job` of `client` on the device thread in its turn, without a
    /// place to announce (a short job no one watches).
    pub fn run_unlisted(&self, client: &Client, job: impl FnOnce() + Send + 'static) {
        self.push(client.name(), None, Box::new(job));
    }

    /// Other clients' jobs ahead of `client`: of its job on the device
    /// (none) or waiting, else of a new job of its (a page's estimate for
    /// the run it just started is that run's).
    pub fn ahead_of(&self, client: &Client) -> usize {
        let waiting = self.shared.lock();
        let name = client.name();
        if client.browser.is_some() && waiting.running.as_deref() == Some(name.as_str()) {
            return 0;
        }
        let earliest = (waiting.jobs.iter())
            .filter(|w| client.browser.is_some() && w.client == name)
            .map(|w| (w.round, w.arrival))
            .min();
        let at = earliest.unwrap_or((waiting.round_for(&name), u64::MAX));
        waiting.others_ahead(&name, at)
    }

    /// Runs `work` on the device thread before anything queued later
    /// (start-up measurements).
    pub fn run_quietly(&self, work: impl FnOnce() + Send + 'static) {
        self.push(String::new(), None, Box::new(work));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;
    use tokio_stream::StreamExt;

    fn browser(name: &str) -> Client {
        Client::browser_at("10.0.0.1".parse().unwrap(), &format!("browser-{name}"))
    }

    /// A queue whose device is held by a job of another client until the
    /// returned sender is dropped, and the list of jobs run, in order.
    fn held_queue() -> (DeviceQueue, mpsc::Sender<()>, Arc<Mutex<Vec<String>>>) {
        let queue = DeviceQueue::start();
        let (hold, held) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel();
        queue.run_unlisted(&Client::at("10.9.9.9".parse().unwrap()), move || {
            started.send(()).unwrap();
            let _ = held.recv();
        });
        running.recv().unwrap();
        (queue, hold, Arc::default())
    }

    fn record(ran: &Arc<Mutex<Vec<String>>>, name: &str) -> impl FnOnce() + Send + 'static {
        let (ran, name) = (ran.clone(), name.to_string());
        move || ran.lock().unwrap().push(name)
    }

    /// Waits until the device has run `count` jobs after the one holding it.
    fn wait_for(ran: &Arc<Mutex<Vec<String>>>, count: usize) -> Vec<String> {
        for _ in 0..500 {
            if ran.lock().unwrap().len() >= count {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        ran.lock().unwrap().clone()
    }

    #[test]
    fn browsers_are_served_in_turn() {
        let (queue, hold, ran) = held_queue();
        for n in 1..=3 {
            queue.run_unlisted(&browser("a"), record(&ran, &format!("a{n}")));
        }
        queue.run_unlisted(&browser("b"), record(&ran, "b1"));
        queue.run_unlisted(&browser("c"), record(&ran, "c1"));
        queue.run_unlisted(&browser("b"), record(&ran, "b2"));
        drop(hold);
        assert_eq!(wait_for(&ran, 6), ["a1", "b1", "c1", "a2", "b2", "a3"]);
    }

    /// A listed run's job as `serve` makes it: it does nothing once its run
    /// has ended (replaced or cancelled).
    fn run_job(
        ran: &Arc<Mutex<Vec<String>>>,
        run: &Arc<LiveRun>,
        name: &str,
    ) -> impl FnOnce() + Send + 'static {
        let (job, run) = (record(ran, name), run.clone());
        move || {
            if !run.is_cancelled() {
                job()
            }
        }
    }

    fn queued_places(events: Vec<Result<ExplainEvent, tonic::Status>>) -> Vec<u32> {
        (events.into_iter())
            .filter_map(|e| match e.ok()?.event? {
                Event::Queued(q) => Some(q.ahead),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_browsers_new_run_takes_its_waiting_runs_place_and_places_count_only_others() {
        let (queue, hold, ran) = held_queue();
        let runs: Vec<Arc<LiveRun>> = (0..4).map(|_| Arc::new(LiveRun::default())).collect();
        let mut viewers: Vec<_> = runs
            .iter()
            .map(|r| r.subscribe(Vec::new()).unwrap())
            .collect();
        // As `serve` queues a run: a browser's waiting run gives its place.
        let queue_run = |id: &str, n: usize, who: &str| {
            let place = queue.take_place(&browser(who));
            let job = run_job(&ran, &runs[n], id);
            queue.run(id, runs[n].clone(), &browser(who), place, job);
        };
        queue_run("a1", 0, "a");
        queue_run("b1", 1, "b");
        assert_eq!(
            queue.ahead_of(&browser("a")),
            1,
            "the other client's job on the device"
        );
        assert_eq!(queue.ahead_of(&browser("b")), 2);
        assert_eq!(queue.ahead_of(&browser("new")), 3);
        // A's new run replaces a1, in a1's place before b1.
        queue_run("a2", 2, "a");
        // Watched by somebody else as well, a2 is not replaced: a3 waits
        // behind it, after b1.
        let _joined = runs[2].subscribe(Vec::new()).unwrap();
        queue_run("a3", 3, "a");
        drop(hold);
        assert_eq!(wait_for(&ran, 3), ["a2", "b1", "a3"]);
        for run in &runs {
            run.end(None);
        }
        let replaced: Vec<_> = viewers.remove(0).collect().await;
        let status = replaced.last().unwrap().as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Cancelled);
        assert!(status.message().contains("newer explanation"), "{status:?}");
        let mut seen = Vec::new();
        for viewer in viewers {
            seen.push(queued_places(viewer.collect().await));
        }
        // b1: behind the held job and a1, then a2 in a1's place, then the
        // held job only. a2: behind the held job; a3: behind it and b1 (a2
        // is its own), then b1 only.
        assert_eq!(seen[0], [2, 1]);
        assert_eq!(seen[1], [1]);
        assert_eq!(seen[2], [2, 1]);
    }
}
