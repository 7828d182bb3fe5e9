//! Finished explanations, kept so that share links open at once (also after
//! a restart) and identical requests are answered without recomputing.
//!
//! Everything goes through [`Store`]: SQLite (compiled in, one file) for
//! the single-process default, PostgreSQL for hosts that share one database.

mod postgres;
mod sqlite;

use lens_proto::v1::{FaithfulnessResult, StoredExplanation};
use prost::Message;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use self::postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// SHA-256 of everything that decides an explanation's result.
pub type RequestKey = [u8; 32];

/// One finished explanation as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: String,
    pub request_key: RequestKey,
    /// SHA-256 of the creator's secret (the secret itself is never stored).
    pub secret_hash: [u8; 32],
    pub created_unix: i64,
    pub model: String,
    pub method: String,
    pub explanation: StoredExplanation,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    NotFound,
    WrongSecret,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("store: {0}")]
    BadUrl(String),
    /// The database cannot be reached (now): worth trying again later.
    #[error("store: cannot reach {place}: {message}")]
    Unavailable { place: String, message: String },
    #[error("store: cannot create {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("store: the explanation {id} is damaged: {message}")]
    Damaged { id: String, message: String },
}

pub trait Store: Send + Sync {
    /// Saves a whole record, or nothing (one transaction).
    fn save(&self, record: &Record) -> Result<(), StoreError>;
    fn load(&self, id: &str) -> Result<Option<Record>, StoreError>;
    /// The id of a stored explanation of an identical request, if any.
    fn find(&self, key: &RequestKey) -> Result<Option<String>, StoreError>;
    /// Deletes `id` if `secret` is its creator's.
    fn delete(&self, id: &str, secret: &str) -> Result<Deletion, StoreError>;
    /// Removes explanations created before `cutoff_unix`; returns how many.
    fn remove_older_than(&self, cutoff_unix: i64) -> Result<usize, StoreError>;
    /// Removes the oldest explanations until the stored ones take at most
    /// `max_bytes` (their encoded size); returns how many went.
    fn shrink_to(&self, max_bytes: u64) -> Result<usize, StoreError>;
    /// Keeps the deletion and insertion curves of `id`'s map under
    /// `removal` (replacing earlier ones); false when `id` is not stored.
    fn save_faithfulness(
        &self,
        id: &str,
        removal: &str,
        result: &FaithfulnessResult,
    ) -> Result<bool, StoreError>;
    fn load_faithfulness(
        &self,
        id: &str,
        removal: &str,
    ) -> Result<Option<FaithfulnessResult>, StoreError>;
}

/// A row as the database gives it back, before it is trusted.
pub struct StoredRow<'a> {
    pub request_key: &'a [u8],
    pub secret_hash: &'a [u8],
    pub created_unix: i64,
    pub model: String,
    pub method: String,
    pub body: &'a [u8],
}

/// A stored row as a record, or `Damaged` with what is wrong: a row is
/// read back from a file that anything may have changed, and what it
/// holds is sent to browsers as it is.
pub fn decode_row(id: &str, row: StoredRow) -> Result<Record, StoreError> {
    let damaged = |message: String| StoreError::Damaged {
        id: id.to_string(),
        message,
    };
    let explanation = StoredExplanation::decode(row.body).map_err(|e| damaged(e.to_string()))?;
    if let Some(map) = &explanation.map {
        let pixels = map.width as u64 * map.height as u64;
        if pixels != map.values.len() as u64 {
            return Err(damaged(format!(
                "its map is {} x {} but holds {} values",
                map.width,
                map.height,
                map.values.len()
            )));
        }
        if let Some(other) = explanation
            .class_maps
            .iter()
            .find(|m| m.values.len() as u64 != pixels)
        {
            return Err(damaged(format!(
                "the map of class {} holds {} values, not {pixels}",
                other.class_index,
                other.values.len()
            )));
        }
    }
    Ok(Record {
        id: id.to_string(),
        request_key: row
            .request_key
            .try_into()
            .map_err(|_| damaged("request key".into()))?,
        secret_hash: row
            .secret_hash
            .try_into()
            .map_err(|_| damaged("secret hash".into()))?,
        created_unix: row.created_unix,
        model: row.model,
        method: row.method,
        explanation,
    })
}

/// Stored faithfulness curves as a result, or `Damaged`.
pub fn decode_faithfulness(
    id: &str,
    removal: &str,
    body: &[u8],
) -> Result<FaithfulnessResult, StoreError> {
    FaithfulnessResult::decode(body).map_err(|e| StoreError::Damaged {
        id: id.to_string(),
        message: format!("its {removal} faithfulness: {e}"),
    })
}

/// 128 random bits as 32 hex digits: share ids that cannot be guessed or
/// enumerated (rand's thread generator is a CSPRNG seeded by the OS).
pub fn new_id() -> String {
    random_hex::<16>()
}

/// 256 random bits for the creator's delete secret.
pub fn new_secret() -> String {
    random_hex::<32>()
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Bytes as lower-case hexadecimal, two digits a byte (ids, secrets, keys).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has the shape `new_id` gives (checked before any lookup).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The key of a request: the image bytes and a canonical description of
/// every setting that changes the result (not batch or tile size, which do
/// not).
pub fn request_key(image: &[u8], settings: &str) -> RequestKey {
    let mut hasher = Sha256::new();
    hasher.update((image.len() as u64).to_le_bytes());
    hasher.update(image);
    hasher.update(settings.as_bytes());
    hasher.finalize().into()
}

/// Seconds since 1970, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
