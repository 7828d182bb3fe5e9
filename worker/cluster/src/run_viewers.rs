//! How many of this gateway's clients watch each run, told to the workers
//! through NATS (`cluster::run_board`): at once when it changes, and renewed
//! while anyone watches, so a worker stops a run that nobody watches
//! anywhere any more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::run_board::{RunBoard, VIEWERS_EVERY};

pub struct RunViewers {
    board: RunBoard,
    gateway: String,
    counts: Mutex<HashMap<String, u32>>,
}

/// One client watching one run, while it is held.
pub struct Watching {
    viewers: Arc<RunViewers>,
    id: String,
}

impl RunViewers {
    /// Starts renewing the counts of gateway `gateway`.
    pub fn start(board: RunBoard, gateway: String) -> Arc<RunViewers> {
        let viewers = Arc::new(RunViewers {
            board,
            gateway,
            counts: Mutex::default(),
        });
        let renewing = viewers.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(VIEWERS_EVERY);
            loop {
                every.tick().await;
                let counts: Vec<(String, u32)> = renewing
                    .counts()
                    .iter()
                    .map(|(id, n)| (id.clone(), *n))
                    .collect();
                for (id, n) in counts {
                    renewing.tell(&id, n).await;
                }
            }
        });
        viewers
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more viewer of run `id` until the result is dropped.
    pub fn watching(self: &Arc<Self>, id: &str) -> Watching {
        let n = {
            let mut counts = self.counts();
            let n = counts.entry(id.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        self.tell_soon(id, n);
        Watching {
            viewers: self.clone(),
            id: id.to_string(),
        }
    }

    fn tell_soon(self: &Arc<Self>, id: &str, n: u32) {
        let (this, id) = (self.clone(), id.to_string());
        tokio::spawn(async move { this.tell(&id, n).await });
    }

    async fn tell(&self, id: &str, n: u32) {
        if let Err(error) = self.board.viewing(id, &self.gateway, n).await {
            tracing::warn!("cannot tell the workers who watches {id}: {error}");
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let n = {
            let mut counts = self.viewers.counts();
            let n = counts.get_mut(&self.id).map_or(0, |n| {
                *n = n.saturating_sub(1);
                *n
            });
            if n == 0 {
                counts.remove(&self.id);
            }
            n
        };
        // A stream may end with the runtime (the gateway stopping).
        if tokio::runtime::Handle::try_current().is_ok() {
            self.viewers.tell_soon(&self.id, n);
        }
    }
}
