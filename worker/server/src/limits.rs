//! Caps on places held at once: a client's live streams, a run's viewers,
//! the classrooms one client has open. Each cap is a `Limit`: the key its
//! places are counted under, how many there may be and the refusal when
//! all are taken, written once. A `PlaceStore` counts them: `LocalPlaces`
//! in one process, the cluster's quotas over every gateway. (Where the
//! counted things live in one process already, the run's list of viewers
//! or the open classrooms, that list is the local store.)

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::client::Client;
use super::status::ServiceError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Watches,
    NetworkWatches,
    Viewers,
    ClassroomsOpened,
}

/// One cap on the places held under one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    kind: Kind,
    most: usize,
    key: String,
}

impl Limit {
    /// The live streams (`Watch`, or an identical request joining a run)
    /// one browser may have open (a client without an id: its address).
    pub fn watches(most: usize, client: &Client) -> Option<Limit> {
        Some(Limit {
            kind: Kind::Watches,
            most,
            key: client.own_key("w")?,
        })
    }

    /// The live streams a whole address (a classroom) may have open.
    pub fn network_watches(most: usize, client: &Client) -> Option<Limit> {
        Some(Limit {
            kind: Kind::NetworkWatches,
            most,
            key: client.address_key("n")?,
        })
    }

    /// The viewers of run `run`, its creator included.
    pub fn viewers(most: usize, run: &str) -> Limit {
        Limit {
            kind: Kind::Viewers,
            most,
            key: format!("v.{run}"),
        }
    }

    /// The classrooms one client may have open at once.
    pub fn classrooms_opened(most: usize, client: &Client) -> Option<Limit> {
        Some(Limit {
            kind: Kind::ClassroomsOpened,
            most,
            key: client.own_key("o")?,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn most(&self) -> usize {
        self.most
    }

    /// What a request is told when every place is taken.
    pub fn refusal(&self) -> ServiceError {
        let limit = self.most;
        match self.kind {
            Kind::Watches => ServiceError::TooManyWatches { limit },
            Kind::NetworkWatches => ServiceError::TooManyWatchesFromNetwork { limit },
            Kind::Viewers => ServiceError::TooManyViewers { limit },
            Kind::ClassroomsOpened => ServiceError::TooManyClassroomsOpened { limit },
        }
    }
}

/// Where places are counted.
pub trait PlaceStore: Send + Sync {
    /// A place held; dropping it gives it back.
    type Place: Send + Sync + 'static;

    /// One of `limit`'s places, or `None` when all are taken.
    fn try_take(
        self: &Arc<Self>,
        limit: &Limit,
    ) -> impl Future<Output = Result<Option<Self::Place>, ServiceError>> + Send;
}

/// One of `limit`'s places, or its refusal.
pub async fn take<S: PlaceStore>(store: &Arc<S>, limit: Limit) -> Result<S::Place, ServiceError> {
    match store.try_take(&limit).await? {
        Some(place) => Ok(place),
        None => Err(limit.refusal()),
    }
}

/// A live stream's places: its browser's and its address's (either may be
/// uncounted, for a client whose address is unknown).
pub async fn take_watch<S: PlaceStore>(
    store: &Arc<S>,
    client: &Client,
    limits: &crate::admission::Limits,
) -> Result<Vec<S::Place>, ServiceError> {
    let mut places = Vec::new();
    let network = Limit::network_watches(limits.watches_per_address, client);
    for limit in [Limit::watches(limits.watches_per_client, client), network]
        .into_iter()
        .flatten()
    {
        // A refusal drops the places taken so far.
        places.push(take(store, limit).await?);
    }
    Ok(places)
}

/// Places counted in this process.
#[derive(Default)]
pub struct LocalPlaces {
    taken: Mutex<HashMap<String, usize>>,
}

/// A place counted in this process.
pub struct LocalPlace {
    places: Arc<LocalPlaces>,
    key: String,
}

impl LocalPlaces {
    fn taken(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `try_take` without waiting (nothing here does).
    pub fn take_now(self: &Arc<Self>, limit: &Limit) -> Option<LocalPlace> {
        let mut taken = self.taken();
        let mine = taken.entry(limit.key.clone()).or_default();
        if *mine >= limit.most {
            return None;
        }
        *mine += 1;
        Some(LocalPlace {
            places: self.clone(),
            key: limit.key.clone(),
        })
    }
}

impl PlaceStore for LocalPlaces {
    type Place = LocalPlace;

    async fn try_take(self: &Arc<Self>, limit: &Limit) -> Result<Option<LocalPlace>, ServiceError> {
        Ok(self.take_now(limit))
    }
}

impl Drop for LocalPlace {
    fn drop(&mut self) {
        let mut taken = self.places.taken();
        if let Some(mine) = taken.get_mut(&self.key) {
            *mine -= 1;
            if *mine == 0 {
                taken.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn places_are_refused_with_the_limits_message_until_one_is_given_back() {
        let places = Arc::new(LocalPlaces::default());
        let client = Client::at("10.0.0.1".parse().unwrap());
        let watches = |c: &Client| Limit::watches(2, c).unwrap();
        let first = take(&places, watches(&client)).await.unwrap();
        let _second = take(&places, watches(&client)).await.unwrap();
        let refused = take(&places, watches(&client)).await.err();
        assert!(matches!(
            refused,
            Some(ServiceError::TooManyWatches { limit: 2 })
        ));
        // Another client and another limit count apart.
        let other = Client::at("10.0.0.2".parse().unwrap());
        assert!(take(&places, watches(&other)).await.is_ok());
        let viewers = take(&places, Limit::viewers(1, "run")).await;
        assert!(viewers.is_ok());
        assert!(matches!(
            take(&places, Limit::viewers(1, "run")).await.err(),
            Some(ServiceError::TooManyViewers { limit: 1 })
        ));
        drop(first);
        assert!(take(&places, watches(&client)).await.is_ok());
    }

    #[tokio::test]
    async fn browsers_at_one_address_each_have_their_own_watches_within_the_networks() {
        let places = Arc::new(LocalPlaces::default());
        let limits = crate::admission::Limits {
            watches_per_client: 1,
            watches_per_address: 3,
            ..Default::default()
        };
        let ip = "10.0.0.1".parse().unwrap();
        let browser = |n: u32| Client::browser_at(ip, &format!("browser-{n:04}"));
        let mut held = Vec::new();
        for n in 0..3 {
            held.push(take_watch(&places, &browser(n), &limits).await.unwrap());
        }
        // The first browser's second stream is over its own limit...
        assert!(matches!(
            take_watch(&places, &browser(0), &limits).await.err(),
            Some(ServiceError::TooManyWatches { limit: 1 })
        ));
        // ...and a fourth browser is over the address's.
        assert!(matches!(
            take_watch(&places, &browser(3), &limits).await.err(),
            Some(ServiceError::TooManyWatchesFromNetwork { limit: 3 })
        ));
        // The refused browser kept no place of its own: one stream ending
        // lets it in.
        held.pop();
        assert!(take_watch(&places, &browser(3), &limits).await.is_ok());
    }
}
