//! Limits that keep a shared host alive: a bounded number of jobs (one runs
//! on the device, the rest wait their turn) and a cap on the runs one client
//! may have at once. A job is admitted with a ticket that frees its place
//! when dropped, however the job ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::status::ServiceError;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Jobs running or waiting, at most.
    pub jobs: usize,
    /// Runs one client (IP address) may have at once.
    pub per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            jobs: 8,
            per_client: 2,
        }
    }
}

#[derive(Default)]
struct Counts {
    jobs: usize,
    per_client: HashMap<IpAddr, usize>,
}

pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// A place in the queue; dropping it gives the place back.
pub struct Ticket {
    admission: Arc<Admission>,
    client: Option<IpAddr>,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Ticket, ServiceError> {
        let mut counts = self.counts();
        if counts.jobs >= self.limits.jobs {
            return Err(ServiceError::Busy { jobs: counts.jobs });
        }
        if let Some(ip) = client {
            let mine = counts.per_client.entry(ip).or_default();
            if *mine >= self.limits.per_client {
                return Err(ServiceError::TooManyRuns {
                    limit: self.limits.per_client,
                });
            }
            *mine += 1;
        }
        counts.jobs += 1;
        Ok(Ticket {
            admission: self.clone(),
            client,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        counts.jobs -= 1;
        if let Some(ip) = self.client {
            if let Some(mine) = counts.per_client.get_mut(&ip) {
                *mine -= 1;
                if *mine == 0 {
                    counts.per_client.remove(&ip);
                }
            }
        }
    }
}
