//! Classrooms across gateways: every class lives in a NATS key-value bucket
//! (`c.CODE`: its record; `t.TOKEN`: the code its link token stands for),
//! so a teacher and students reach it through any gateway. Each gateway
//! keeps a local copy of the classes its clients use and follows the
//! record's changes; it puts its own number of followers under
//! `CODE.GATEWAY` in a second bucket, renewed while it lives, so the
//! teacher sees everyone following wherever they are connected.

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::{self};
use futures::{Stream, StreamExt};
use prost::Message;

use super::messages::ClassRecord;
use super::{connect, key_value_bucket, ClusterError};

const CLASSES: &str = "LENS_CLASSES";
const FOLLOWERS: &str = "LENS_CLASS_FOLLOWERS";
/// A class record outlives any lesson (a class ends sooner when its teacher
/// closes it or stays away).
const CLASS_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A gateway's count of followers lasts this long unless renewed (a dead
/// gateway's followers stop being counted).
pub const COUNT_LIFETIME: Duration = Duration::from_secs(15);
/// How often a gateway renews its counts.
pub const COUNT_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ClassroomBoard {
    classes: kv::Store,
    followers: kv::Store,
}

impl ClassroomBoard {
    /// Connects to NATS at `url`; creates the buckets where they are missing.
    pub async fn open(url: &str) -> Result<ClassroomBoard, ClusterError> {
        let jetstream = jetstream::new(connect(url).await?);
        Ok(ClassroomBoard {
            classes: key_value_bucket(&jetstream, url, CLASSES, CLASS_LIFETIME).await?,
            followers: key_value_bucket(&jetstream, url, FOLLOWERS, COUNT_LIFETIME).await?,
        })
    }

    /// Puts a new class under `code`; false when another gateway's class
    /// has that code already.
    pub async fn create(&self, code: &str, record: &ClassRecord) -> Result<bool, ClusterError> {
        let encoded = bytes::Bytes::from(record.encode_to_vec());
        match self.classes.create(format!("c.{code}"), encoded).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(ClusterError::nats(e)),
        }
        self.classes
            .put(format!("t.{}", record.token), code.to_string().into())
            .await
            .map_err(ClusterError::nats)?;
        Ok(true)
    }

    /// Replaces the class's record (a new view, or its end).
    /// Notes that `browser` followed class `code` (for a day, as classes).
    pub async fn joined(&self, code: &str, browser: &str) -> Result<(), ClusterError> {
        self.classes
            .put(format!("j.{code}.{browser}"), bytes::Bytes::new())
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// Whether `browser` has followed class `code`.
    pub async fn has_joined(&self, code: &str, browser: &str) -> Result<bool, ClusterError> {
        let key = format!("j.{code}.{browser}");
        Ok(self
            .classes
            .get(key)
            .await
            .map_err(ClusterError::nats)?
            .is_some())
    }

    pub async fn put(&self, code: &str, record: &ClassRecord) -> Result<(), ClusterError> {
        let encoded = bytes::Bytes::from(record.encode_to_vec());
        self.classes
            .put(format!("c.{code}"), encoded)
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// The class with this code or link token (longer than any code), read
    /// case-blind, with its code; `None` when there is none or it has ended.
    pub async fn find(
        &self,
        code_or_token: &str,
        code_length: usize,
    ) -> Result<Option<(String, ClassRecord)>, ClusterError> {
        let asked = code_or_token.trim();
        // Keys hold letters, digits and a few signs only: anything else
        // names no class.
        if asked.is_empty() || !asked.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let code = if asked.len() > code_length {
            let key = format!("t.{}", asked.to_ascii_lowercase());
            match self.classes.get(key).await.map_err(ClusterError::nats)? {
                Some(code) => String::from_utf8_lossy(&code).into_owned(),
                None => return Ok(None),
            }
        } else {
            asked.to_ascii_uppercase()
        };
        let Some(bytes) = self
            .classes
            .get(format!("c.{code}"))
            .await
            .map_err(ClusterError::nats)?
        else {
            return Ok(None);
        };
        let record = ClassRecord::decode(bytes).map_err(ClusterError::nats)?;
        Ok((!record.ended).then_some((code, record)))
    }

    /// The class's record now and at every change.
    pub async fn watch(
        &self,
        code: &str,
    ) -> Result<impl Stream<Item = ClassRecord> + Send + Unpin + use<>, ClusterError> {
        let entries = self
            .classes
            .watch_with_history(format!("c.{code}"))
            .await
            .map_err(ClusterError::nats)?;
        Ok(entries
            .take_while(|entry| futures::future::ready(entry.is_ok()))
            .filter_map(|entry| {
                let record = entry.ok().and_then(|e| ClassRecord::decode(e.value).ok());
                futures::future::ready(record)
            }))
    }

    /// Says how many of the class's followers are connected to `gateway`.
    pub async fn count(
        &self,
        code: &str,
        gateway: &str,
        followers: u32,
    ) -> Result<(), ClusterError> {
        self.followers
            .put(format!("{code}.{gateway}"), followers.to_string().into())
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// Every gateway's count of the class's followers, now and at every
    /// change: (gateway, followers).
    pub async fn watch_counts(
        &self,
        code: &str,
    ) -> Result<impl Stream<Item = (String, u32)> + Send + Unpin + use<>, ClusterError> {
        super::watch_counts(&self.followers, code).await
    }
}
