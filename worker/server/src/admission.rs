//! Limits that keep a shared host alive: a bounded number of jobs (one runs
//! on the device, the rest wait their turn), a cap on the runs one client
//! (a browser, else an address) may have at once and a larger one for a
//! whole address (a classroom). A job is admitted with a ticket that frees
//! its places when dropped, however the job ends. Admitted jobs decode their uploads
//! under a budget of pixels decoded at once, so many large uploads cannot
//! take all memory together.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use super::client::Client;
use super::status::ServiceError;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Jobs running or waiting, at most: room for a class of thirty drawing
    /// at once.
    pub jobs: usize,
    /// Runs one client (a browser, else an address) may have running or
    /// queued at once.
    pub per_client: usize,
    /// Runs one address may have running or queued at once: sized for a
    /// classroom behind one school address, short of the whole queue.
    pub per_address: usize,
    /// A class ends when its teacher has been away this long.
    pub class_idle: std::time::Duration,
    /// Viewers of one run at most (its creator included).
    pub viewers_per_run: usize,
    /// Live streams (`Watch`, or an identical request joining a run) one
    /// client may have open.
    pub watches_per_client: usize,
    /// Live streams one address may have open (a classroom's).
    pub watches_per_address: usize,
    /// Events waiting for one viewer at most; a viewer that falls further
    /// behind is dropped. Events are shared between viewers, so a waiting
    /// event costs a viewer a pointer; the default holds every tile of a
    /// 224 x 224 map at the smallest tile size (3,136), as gradient methods
    /// publish the whole map at once.
    pub viewer_buffer: usize,
    /// Behind a reverse proxy every request comes from the proxy: then the
    /// client is the first address of `X-Forwarded-For`. Only for a proxy
    /// that sets it (a client could otherwise claim any address).
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            jobs: 64,
            per_client: 2,
            per_address: 40,
            class_idle: std::time::Duration::from_secs(4 * 3600),
            viewers_per_run: 200,
            watches_per_client: 64,
            watches_per_address: 400,
            viewer_buffer: 4096,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Default)]
struct Counts {
    jobs: usize,
    /// Runs by client key and by address key.
    per_key: HashMap<String, usize>,
}

pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// A place in the queue; dropping it gives the place back.
pub struct Ticket {
    admission: Arc<Admission>,
    keys: Vec<String>,
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

    pub fn admit(self: &Arc<Self>, client: &Client) -> Result<Ticket, ServiceError> {
        let mut counts = self.counts();
        if counts.jobs >= self.limits.jobs {
            return Err(ServiceError::Busy { jobs: counts.jobs });
        }
        // A client without a browser id is its address: then both keys
        // name the address, counted apart.
        let own = client.own_key("r");
        let network = client.address_key("a");
        let count = |key: &Option<String>| {
            key.as_ref()
                .map_or(0, |k| counts.per_key.get(k).copied().unwrap_or(0))
        };
        if count(&own) >= self.limits.per_client {
            return Err(ServiceError::TooManyRuns {
                limit: self.limits.per_client,
            });
        }
        if count(&network) >= self.limits.per_address {
            return Err(ServiceError::TooManyRunsFromNetwork {
                limit: self.limits.per_address,
            });
        }
        let keys: Vec<String> = own.into_iter().chain(network).collect();
        for key in &keys {
            *counts.per_key.entry(key.clone()).or_default() += 1;
        }
        counts.jobs += 1;
        Ok(Ticket {
            admission: self.clone(),
            keys,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        counts.jobs -= 1;
        for key in &self.keys {
            if let Some(mine) = counts.per_key.get_mut(key) {
                *mine -= 1;
                if *mine == 0 {
                    counts.per_key.remove(key);
                }
            }
        }
    }
}

/// Pixels being decoded at once, at most: one upload of the largest size
/// accepted (`input::MAX_PIXELS`, about 0.6 GB while it is converted), or
/// several smaller ones. Decoding is CPU work the device waits for anyway.
pub const DECODE_BUDGET: u64 = lens_engine::input::MAX_PIXELS;

/// A budget of pixels shared by the decoding threads.
pub struct PixelBudget {
    limit: u64,
    in_use: Mutex<u64>,
    freed: Condvar,
}

/// Pixels taken from the budget; dropping it gives them back.
pub struct Pixels {
    budget: Arc<PixelBudget>,
    taken: u64,
}

impl PixelBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(PixelBudget {
            limit,
            in_use: Mutex::default(),
            freed: Condvar::new(),
        })
    }

    /// Takes `pixels` (at most the whole budget), waiting on this blocking
    /// thread until that many are free.
    pub fn take(self: &Arc<Self>, pixels: u64) -> Pixels {
        let taken = pixels.min(self.limit);
        let in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        let mut in_use = self
            .freed
            .wait_while(in_use, |used| *used + taken > self.limit)
            .unwrap_or_else(|e| e.into_inner());
        *in_use += taken;
        Pixels {
            budget: self.clone(),
            taken,
        }
    }

    #[cfg(test)]
    fn in_use(&self) -> u64 {
        *self.in_use.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Pixels {
    fn drop(&mut self) {
        *self.budget.in_use.lock().unwrap_or_else(|e| e.into_inner()) -= self.taken;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_count_per_browser_within_a_limit_per_address() {
        let admission = Admission::new(Limits {
            jobs: 10,
            per_client: 2,
            per_address: 5,
            ..Default::default()
        });
        let school = "10.0.0.1".parse().unwrap();
        let browser = |n: u32| Client::browser_at(school, &format!("browser-{n:04}"));
        let mut tickets: Vec<Ticket> = (0..2)
            .map(|_| admission.admit(&browser(0)).unwrap())
            .collect();
        assert!(matches!(
            admission.admit(&browser(0)).err(),
            Some(ServiceError::TooManyRuns { limit: 2 })
        ));
        // Classmates behind the same address are other clients...
        tickets.extend((1..4).map(|n| admission.admit(&browser(n)).unwrap()));
        // ...until the address has its five: a program there without an id
        // is refused too; one elsewhere is not.
        assert!(matches!(
            admission.admit(&browser(4)).err(),
            Some(ServiceError::TooManyRunsFromNetwork { limit: 5 })
        ));
        assert!(matches!(
            admission.admit(&Client::at(school)).err(),
            Some(ServiceError::TooManyRunsFromNetwork { limit: 5 })
        ));
        let elsewhere = admission.admit(&Client::at("10.0.0.2".parse().unwrap()));
        assert!(elsewhere.is_ok());
        // A run ending gives its places back.
        tickets.remove(0);
        assert!(admission.admit(&browser(4)).is_ok());
    }

    #[test]
    fn decoding_waits_until_the_pixel_budget_has_room() {
        let budget = PixelBudget::new(100);
        let first = budget.take(60);
        let (done, finished) = mpsc::channel();
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let second = budget.take(50);
                done.send(budget.in_use()).unwrap();
                drop(second);
            })
        };
        // 60 + 50 > 100: the second waits while the first holds its pixels.
        assert!(finished.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        assert_eq!(finished.recv_timeout(Duration::from_secs(10)).unwrap(), 50);
        waiting.join().unwrap();
        assert_eq!(budget.in_use(), 0);
        // More than the whole budget takes the whole budget, not forever.
        let huge = budget.take(1_000);
        assert_eq!(budget.in_use(), 100);
        drop(huge);
    }
}
