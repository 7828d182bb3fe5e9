//! Stopping a service: no new explanations, the runs in progress end with
//! a clear status, and the process waits for the device before it exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::live::LiveRuns;
use super::status::ServiceError;

/// Stops a service: no new explanations, the runs in progress end with a
/// clear status (UNAVAILABLE, "shutting down"), jobs still queued end the
/// same way without running, and the process can wait until no job touches
/// the device (libtorch must not be torn down under a running job).
#[derive(Clone, Default)]
pub struct Shutdown {
    begun: Arc<AtomicBool>,
    live: Arc<LiveRuns>,
    /// Jobs admitted and not yet finished, and a signal when one finishes.
    jobs: Arc<(Mutex<usize>, Condvar)>,
    /// Told once when shutting down begins (for the health service).
    announced: Arc<tokio::sync::Notify>,
    /// Told to everyone waiting in `stopped` (streams relayed by a gateway).
    stopping: Arc<tokio::sync::Notify>,
}

/// A job in flight; dropping it counts the job as finished.
pub(super) struct JobInFlight(Arc<(Mutex<usize>, Condvar)>);

impl Drop for JobInFlight {
    fn drop(&mut self) {
        let (count, finished) = &*self.0;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        finished.notify_all();
    }
}

impl Shutdown {
    /// A shutdown that also ends the runs of `live`.
    pub(super) fn ending(live: Arc<LiveRuns>) -> Shutdown {
        Shutdown {
            live,
            ..Shutdown::default()
        }
    }

    pub fn begin(&self) {
        self.begun.store(true, Ordering::SeqCst);
        self.live.end_all(ServiceError::ShuttingDown.into());
        // A permit for the one waiter, also if it is not waiting yet.
        self.announced.notify_one();
        self.stopping.notify_waiters();
    }

    /// Completes once shutting down has begun (any number of waiters).
    pub async fn stopped(&self) {
        let notified = self.stopping.notified();
        tokio::pin!(notified);
        // Registered before the check, so a `begin` in between is not missed.
        notified.as_mut().enable();
        if !self.has_begun() {
            notified.await;
        }
    }

    /// Returns once shutting down has begun (one waiter: the health task).
    pub async fn begun(&self) {
        self.announced.notified().await;
    }

    pub fn has_begun(&self) -> bool {
        self.begun.load(Ordering::SeqCst)
    }

    pub(super) fn job_started(&self) -> JobInFlight {
        *self.jobs.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        JobInFlight(self.jobs.clone())
    }

    /// Waits (blocking) until no job is in flight, or `limit` has passed;
    /// whether none is left.
    pub(super) fn wait_for_jobs(&self, limit: Duration) -> bool {
        let (count, finished) = &*self.jobs;
        let count = count.lock().unwrap_or_else(|e| e.into_inner());
        let (count, _) = finished
            .wait_timeout_while(count, limit, |jobs| *jobs > 0)
            .unwrap_or_else(|e| e.into_inner());
        *count == 0
    }
}
