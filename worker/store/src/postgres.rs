//! The store in PostgreSQL, for hosts that outgrow one machine: any number
//! of processes share one database. The same semantics as the SQLite store
//! (each explanation one row in one transaction, request keys, deletion with
//! the creator's secret, retention and a size cap), so one test suite runs
//! against both.
//!
//! The schema comes from numbered migrations, applied once each under an
//! advisory lock (many processes may start at the same moment). A lost
//! connection is opened again on the next call, so the store recovers when
//! the database comes back.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use lens_proto::v1::FaithfulnessResult;
use postgres::{Client, Config, NoTls};
use prost::Message;

use super::{
    decode_faithfulness, decode_row, hash_secret, Deletion, Record, RequestKey, Store, StoreError,
    StoredRow,
};

/// The schema, one step per entry, in order; never edit a step once it
/// shipped, add one.
const MIGRATIONS: &[&str] = &[
    // 1: explanations and their faithfulness curves. `seq` orders rows
    // saved in the same second, as SQLite's rowid does.
    "CREATE TABLE explanations (
         id TEXT PRIMARY KEY,
         seq BIGSERIAL NOT NULL,
         request_key BYTEA NOT NULL,
         secret_hash BYTEA NOT NULL,
         created_unix BIGINT NOT NULL,
         model TEXT NOT NULL,
         method TEXT NOT NULL,
         body BYTEA NOT NULL
     );
     CREATE INDEX explanations_by_request ON explanations (request_key);
     CREATE INDEX explanations_by_age ON explanations (created_unix);
     CREATE TABLE faithfulness (
         id TEXT NOT NULL REFERENCES explanations (id) ON DELETE CASCADE,
         removal TEXT NOT NULL,
         body BYTEA NOT NULL,
         PRIMARY KEY (id, removal)
     );",
];

/// Any number that no other user of the database takes as its advisory lock.
const MIGRATION_LOCK: i64 = 0x6c65_6e73_0001;

pub struct PostgresStore {
    config: Config,
    /// What the errors name: the URL without its password.
    place: String,
    client: Mutex<Option<Client>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`) and brings
    /// the schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| {
            StoreError::BadUrl(format!(
                "{url:?} is not a PostgreSQL URL (postgres://user@host:port/database): {e}"
            ))
        })?;
        config.connect_timeout(Duration::from_secs(5));
        let place = place_of(&config);
        let store = PostgresStore {
            config,
            place,
            client: Mutex::new(None),
        };
        store.with_client(migrate)?;
        Ok(store)
    }

    /// Runs `call` on the connection, opening it first when there is none
    /// or the last one was lost.
    fn with_client<T>(
        &self,
        call: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            let client = self
                .config
                .connect(NoTls)
                .map_err(|e| self.unavailable(&e))?;
            *slot = Some(client);
        }
        let client = slot.as_mut().expect("connected above");
        call(client).map_err(|e| {
            if client.is_closed() {
                self.unavailable(&e)
            } else {
                StoreError::Postgres(e)
            }
        })
    }

    fn unavailable(&self, error: &postgres::Error) -> StoreError {
        StoreError::Unavailable {
            place: self.place.clone(),
            message: error.to_string(),
        }
    }

    /// Every id in the store (for tests and housekeeping, never served).
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        self.with_client(|c| {
            let rows = c.query("SELECT id FROM explanations ORDER BY id", &[])?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

impl Drop for PostgresStore {
    /// The synchronous client runs a small runtime of its own, and dropping
    /// it on a tokio thread panics ("Cannot start a runtime from within a
    /// runtime"): the last owner of the store is often an async task when a
    /// server stops. Inside a runtime it is dropped on a plain thread.
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if client.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// "PostgreSQL at host:port/database", without user or password.
fn place_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or("(default database)");
    format!("PostgreSQL at {host}:{port}/{database}")
}

fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    transaction.batch_execute(
        "CREATE TABLE IF NOT EXISTS lens_migrations (version INTEGER PRIMARY KEY)",
    )?;
    let done: i32 = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM lens_migrations", &[])?
        .get(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        transaction.batch_execute(step)?;
        let version = index as i32 + 1;
        transaction.execute(
            "INSERT INTO lens_migrations (version) VALUES ($1)",
            &[&version],
        )?;
    }
    transaction.commit()
}

impl Store for PostgresStore {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO explanations
                     (id, request_key, secret_hash, created_unix, model, method, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET
                     request_key = EXCLUDED.request_key, secret_hash = EXCLUDED.secret_hash,
                     created_unix = EXCLUDED.created_unix, model = EXCLUDED.model,
                     method = EXCLUDED.method, body = EXCLUDED.body",
                &[
                    &record.id,
                    &record.request_key.as_slice(),
                    &record.secret_hash.as_slice(),
                    &record.created_unix,
                    &record.model,
                    &record.method,
                    &record.explanation.encode_to_vec(),
                ],
            )
            .map(|_| ())
        })
    }

    fn load(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT request_key, secret_hash, created_unix, model, method, body
                 FROM explanations WHERE id = $1",
                &[&id],
            )
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (key, secret, body): (Vec<u8>, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(5));
        let stored = StoredRow {
            request_key: &key,
            secret_hash: &secret,
            created_unix: row.get(2),
            model: row.get(3),
            method: row.get(4),
            body: &body,
        };
        decode_row(id, stored).map(Some)
    }

    fn find(&self, key: &RequestKey) -> Result<Option<String>, StoreError> {
        self.with_client(|c| {
            let row = c.query_opt(
                "SELECT id FROM explanations WHERE request_key = $1
                 ORDER BY created_unix DESC, seq DESC LIMIT 1",
                &[&key.as_slice()],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn delete(&self, id: &str, secret: &str) -> Result<Deletion, StoreError> {
        self.with_client(|c| {
            let mut transaction = c.transaction()?;
            let stored = transaction.query_opt(
                "SELECT secret_hash FROM explanations WHERE id = $1 FOR UPDATE",
                &[&id],
            )?;
            let outcome = match stored.map(|r| r.get::<_, Vec<u8>>(0)) {
                None => Deletion::NotFound,
                Some(hash) if hash != hash_secret(secret) => Deletion::WrongSecret,
                Some(_) => {
                    transaction.execute("DELETE FROM explanations WHERE id = $1", &[&id])?;
                    Deletion::Deleted
                }
            };
            transaction.commit()?;
            Ok(outcome)
        })
    }

    fn save_faithfulness(
        &self,
        id: &str,
        removal: &str,
        result: &FaithfulnessResult,
    ) -> Result<bool, StoreError> {
        self.with_client(|c| {
            // Inserted only while the explanation exists, in one statement.
            let inserted = c.execute(
                "INSERT INTO faithfulness (id, removal, body)
                 SELECT id, $2, $3 FROM explanations WHERE id = $1
                 ON CONFLICT (id, removal) DO UPDATE SET body = EXCLUDED.body",
                &[&id, &removal, &result.encode_to_vec()],
            )?;
            Ok(inserted == 1)
        })
    }

    fn load_faithfulness(
        &self,
        id: &str,
        removal: &str,
    ) -> Result<Option<FaithfulnessResult>, StoreError> {
        let body: Option<Vec<u8>> = self.with_client(|c| {
            let row = c.query_opt(
                "SELECT body FROM faithfulness WHERE id = $1 AND removal = $2",
                &[&id, &removal],
            )?;
            Ok(row.map(|r| r.get(0)))
        })?;
        body.map(|body| decode_faithfulness(id, removal, &body))
            .transpose()
    }

    fn remove_older_than(&self, cutoff_unix: i64) -> Result<usize, StoreError> {
        self.with_client(|c| {
            c.execute(
                "DELETE FROM explanations WHERE created_unix < $1",
                &[&cutoff_unix],
            )
            .map(|n| n as usize)
        })
    }

    fn shrink_to(&self, max_bytes: u64) -> Result<usize, StoreError> {
        // As in SQLite: newest first, each row's size plus those of the rows
        // newer than it; the rows past the cap are the oldest ones.
        self.with_client(|c| {
            c.execute(
                "DELETE FROM explanations WHERE id IN (
                     SELECT id FROM (
                         SELECT id, SUM(octet_length(body)) OVER (
                             ORDER BY created_unix DESC, seq DESC
                         ) AS newest_total
                         FROM explanations
                     ) AS running WHERE newest_total > $1
                 )",
                &[&(max_bytes as i64)],
            )
            .map(|n| n as usize)
        })
    }
}
