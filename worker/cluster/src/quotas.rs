//! Limits per client (or per run) that hold across gateways: places taken
//! (live streams of a client, viewers of a run, classes a client opened)
//! and recent misses (class codes that matched nothing), kept in one NATS
//! key-value bucket. Each key's value says how many places each gateway
//! holds and when it last said so; a gateway renews what it holds, so the
//! places of a gateway that died lapse. Every change is a compare-and-set
//! on the key's revision, so two gateways never both take the last place.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::{self};
use serde::{Deserialize, Serialize};

use lens_server::limits::{Limit, PlaceStore};
use lens_server::misses::{self, now_ms};
use lens_server::status::ServiceError;

use super::{check_connected, connect, key_value_bucket, ClusterError};

const QUOTAS: &str = "LENS_QUOTAS";
/// A key nobody writes to any more goes after this long.
const KEY_LIFETIME: Duration = Duration::from_secs(3600);
/// A gateway's places last this long unless renewed.
pub const HELD_LIFETIME: Duration = Duration::from_secs(30);
/// How often a gateway renews the places it holds.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// The places taken under one key: gateway -> (places, when said, ms since
/// the epoch).
#[derive(Default, Serialize, Deserialize)]
struct Held(BTreeMap<String, (u32, u64)>);

pub struct Quotas {
    bucket: kv::Store,
    jetstream: jetstream::Context,
    url: String,
    gateway: String,
    /// The places this gateway holds, per key. Changes are made one at a
    /// time (held across the compare-and-set), so this is what the bucket
    /// says for this gateway.
    held: tokio::sync::Mutex<HashMap<String, u32>>,
}

/// A place taken; dropping it gives it back.
pub struct Place {
    quotas: Arc<Quotas>,
    key: String,
}

impl Quotas {
    /// Connects to NATS at `url` as gateway `gateway` and starts renewing
    /// what it holds.
    pub async fn open(url: &str, gateway: String) -> Result<Arc<Quotas>, ClusterError> {
        let jetstream = jetstream::new(connect(url).await?);
        let quotas = Arc::new(Quotas {
            bucket: key_value_bucket(&jetstream, url, QUOTAS, KEY_LIFETIME).await?,
            jetstream,
            url: url.to_string(),
            gateway,
            held: tokio::sync::Mutex::default(),
        });
        let renewing = Arc::downgrade(&quotas);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(quotas) = renewing.upgrade() else {
                    return;
                };
                if let Err(error) = quotas.renew().await {
                    tracing::warn!("cannot renew this gateway's places: {error}");
                }
            }
        });
        Ok(quotas)
    }

    /// Takes one of the `limit` places under `key`, counted over every
    /// gateway; `None` when all are taken.
    pub async fn take(
        self: &Arc<Self>,
        key: &str,
        limit: usize,
    ) -> Result<Option<Place>, ClusterError> {
        let mut held = self.held.lock().await;
        let mine = held.get(key).copied().unwrap_or(0);
        let taken = self
            .change(key, |places| {
                let others: u32 = places
                    .0
                    .iter()
                    .filter(|(gateway, _)| **gateway != self.gateway)
                    .map(|(_, (n, _))| n)
                    .sum();
                if (others + mine) as usize >= limit {
                    return false;
                }
                places.0.insert(self.gateway.clone(), (mine + 1, now_ms()));
                true
            })
            .await?;
        if !taken {
            return Ok(None);
        }
        held.insert(key.to_string(), mine + 1);
        Ok(Some(Place {
            quotas: self.clone(),
            key: key.to_string(),
        }))
    }

    /// How many places are taken under `key` over every gateway.
    pub async fn taken(&self, key: &str) -> Result<u32, ClusterError> {
        let (places, _) = self.read::<Held>(key).await?;
        Ok(places.0.values().map(|(n, _)| n).sum())
    }

    async fn give_back(&self, key: &str) -> Result<(), ClusterError> {
        let mut held = self.held.lock().await;
        let mine = held.get(key).copied().unwrap_or(0).saturating_sub(1);
        if mine == 0 {
            held.remove(key);
        } else {
            held.insert(key.to_string(), mine);
        }
        self.say(key, mine).await
    }

    /// Says again how many places this gateway holds under each key (an
    /// outage may have kept a change from the bucket: what is held here is
    /// the truth).
    async fn renew(&self) -> Result<(), ClusterError> {
        let held = self.held.lock().await;
        for (key, mine) in held.iter() {
            self.say(key, *mine).await?;
        }
        Ok(())
    }

    async fn say(&self, key: &str, mine: u32) -> Result<(), ClusterError> {
        self.change(key, |places| {
            if mine == 0 {
                places.0.remove(&self.gateway);
            } else {
                places.0.insert(self.gateway.clone(), (mine, now_ms()));
            }
            true
        })
        .await?;
        Ok(())
    }

    /// The recent misses under `key` (see `lens_server::misses`).
    pub async fn misses(&self, key: &str) -> Result<Vec<u64>, ClusterError> {
        Ok(self.read::<Vec<u64>>(key).await?.0)
    }

    /// Counts a miss under `key` now.
    pub async fn missed(&self, key: &str) -> Result<(), ClusterError> {
        self.update(key, |recent: &mut Vec<u64>| {
            misses::record(recent, now_ms());
            true
        })
        .await?;
        Ok(())
    }

    /// Changes the places under `key` (lapsed gateways dropped first) with
    /// `change`, which says whether to write; whether it wrote.
    async fn change(
        &self,
        key: &str,
        mut change: impl FnMut(&mut Held) -> bool,
    ) -> Result<bool, ClusterError> {
        self.update(key, |places: &mut Held| {
            let now = now_ms();
            let lifetime = HELD_LIFETIME.as_millis() as u64;
            places
                .0
                .retain(|_, (_, said)| now.saturating_sub(*said) < lifetime);
            change(places)
        })
        .await
    }

    /// Reads, changes and writes the value under `key` until no other
    /// writer came in between; whether it wrote.
    async fn update<T: Default + Serialize + for<'a> Deserialize<'a>>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> bool,
    ) -> Result<bool, ClusterError> {
        loop {
            let (mut value, revision) = self.read::<T>(key).await?;
            if !change(&mut value) {
                return Ok(false);
            }
            let bytes = bytes::Bytes::from(serde_json::to_vec(&value).map_err(ClusterError::nats)?);
            let written = match revision {
                Some(revision) => match self.bucket.update(key, bytes, revision).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(ClusterError::nats(e)),
                },
                None => match self.bucket.create(key, bytes).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(ClusterError::nats(e)),
                },
            };
            if written {
                return Ok(true);
            }
        }
    }

    /// The value under `key` (the default where there is none or it cannot
    /// be read) and its revision.
    async fn read<T: Default + for<'a> Deserialize<'a>>(
        &self,
        key: &str,
    ) -> Result<(T, Option<u64>), ClusterError> {
        // At once while NATS is away (a request would wait for its timeout
        // with the places locked).
        check_connected(&self.jetstream, &self.url)?;
        let entry = self.bucket.entry(key).await.map_err(ClusterError::nats)?;
        Ok(match entry {
            Some(entry) if entry.operation == kv::Operation::Put => (
                serde_json::from_slice(&entry.value).unwrap_or_default(),
                Some(entry.revision),
            ),
            Some(entry) => (T::default(), Some(entry.revision)),
            None => (T::default(), None),
        })
    }
}

impl Place {
    /// Gives the place back now (a refusal that follows must not find it
    /// still taken).
    pub async fn release(mut self) {
        let key = std::mem::take(&mut self.key);
        if let Err(error) = self.quotas.give_back(&key).await {
            tracing::warn!("cannot give back a place under {key}: {error} (it lapses)");
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // A stream may end with the runtime (the gateway stopping): its
        // place then lapses with the gateway.
        if self.key.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (quotas, key) = (self.quotas.clone(), std::mem::take(&mut self.key));
        tokio::spawn(async move {
            if let Err(error) = quotas.give_back(&key).await {
                tracing::warn!("cannot give back a place under {key}: {error} (it lapses)");
            }
        });
    }
}

/// The cluster's quotas as the store of the service's limits.
impl PlaceStore for Quotas {
    type Place = Place;

    async fn try_take(self: &Arc<Self>, limit: &Limit) -> Result<Option<Place>, ServiceError> {
        Ok(self.take(limit.key(), limit.most()).await?)
    }
}
