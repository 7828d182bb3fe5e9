//! Caps on places held at once: a client's live streams, a run's viewers,
//! the classrooms one client has open. Each cap is a `Limit`: the key its
//! places are counted under, how many there may be and the refusal when
//! all are taken, written once. A `PlaceStore` counts them: `LocalPlaces`
//! in one process, the cluster's quotas over every gateway. (Where the
//! counted things live in one process already, the run's list of viewers
//! or the open classrooms, that list is the local store.)

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::status::ServiceError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Watches,
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
    /// `client` may have open.
    pub fn watches(most: usize, client: IpAddr) -> Limit {
        Limit {
            kind: Kind::Watches,
            most,
            key: client_key("w", client),
        }
    }

    /// The viewers of run `run`, its creator included.
    pub fn viewers(most: usize, run: &str) -> Limit {
        Limit {
            kind: Kind::Viewers,
            most,
            key: format!("v.{run}"),
        }
    }

    /// The classrooms `client` may have open at once.
    pub fn classrooms_opened(most: usize, client: IpAddr) -> Limit {
        Limit {
            kind: Kind::ClassroomsOpened,
            most,
            key: client_key("o", client),
        }
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
            Kind::Viewers => ServiceError::TooManyViewers { limit },
            Kind::ClassroomsOpened => ServiceError::TooManyClassroomsOpened { limit },
        }
    }
}

/// A key for `what` about a client: its address in hexadecimal (the
/// cluster's keys take letters, digits and a few signs only; IPv6 has
/// colons).
pub fn client_key(what: &str, client: IpAddr) -> String {
    let bytes = match client {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    format!("{what}.{}", lens_store::hex(&bytes))
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
        let client = "10.0.0.1".parse().unwrap();
        let first = take(&places, Limit::watches(2, client)).await.unwrap();
        let _second = take(&places, Limit::watches(2, client)).await.unwrap();
        let refused = take(&places, Limit::watches(2, client)).await.err();
        assert!(matches!(
            refused,
            Some(ServiceError::TooManyWatches { limit: 2 })
        ));
        // Another client and another limit count apart.
        let other = "10.0.0.2".parse().unwrap();
        assert!(take(&places, Limit::watches(2, other)).await.is_ok());
        let viewers = take(&places, Limit::viewers(1, "run")).await;
        assert!(viewers.is_ok());
        assert!(matches!(
            take(&places, Limit::viewers(1, "run")).await.err(),
            Some(ServiceError::TooManyViewers { limit: 1 })
        ));
        drop(first);
        assert!(take(&places, Limit::watches(2, client)).await.is_ok());
    }

    #[test]
    fn client_keys_are_valid_key_value_keys() {
        let v4 = client_key("w", "10.0.0.255".parse().unwrap());
        assert_eq!(v4, "w.0a0000ff");
        let v6 = client_key("w", "::1".parse().unwrap());
        assert_eq!(v6.len(), 2 + 32);
        assert!(v6.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    }
}
