//! The store in one SQLite file. Each explanation is one row written in one
//! transaction, so a process killed at any moment leaves the whole row or
//! none; write-ahead logging keeps every committed row across such a kill.

use std::path::Path;
use std::sync::Mutex;

use lens_proto::v1::FaithfulnessResult;
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    decode_faithfulness, decode_row, hash_secret, Deletion, Record, RequestKey, Store, StoreError,
    StoredRow,
};

pub struct SqliteStore {
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS explanations (
        id TEXT PRIMARY KEY,
        request_key BLOB NOT NULL,
        secret_hash BLOB NOT NULL,
        created_unix INTEGER NOT NULL,
        model TEXT NOT NULL,
        method TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS explanations_by_request ON explanations (request_key);
    CREATE INDEX IF NOT EXISTS explanations_by_age ON explanations (created_unix);
    -- Deletion and insertion curves of a stored map, per removal; they go
    -- with their explanation (deleted, expired or shrunk away).
    CREATE TABLE IF NOT EXISTS faithfulness (
        id TEXT NOT NULL REFERENCES explanations (id) ON DELETE CASCADE,
        removal TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (id, removal)
    );
";

/// The database file inside the store folder.
pub const FILE_NAME: &str = "explanations.sqlite3";

impl SqliteStore {
    /// Opens (or creates) `folder/explanations.sqlite3`.
    pub fn open(folder: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
            path: folder.display().to_string(),
            source,
        })?;
        let connection = Connection::open(folder.join(FILE_NAME))?;
        // WAL: readers never wait for the writer, and a commit survives the
        // process being killed (NORMAL sync only risks the last commits on a
        // power cut, never half of one).
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        // Off by default in SQLite; the cascade above needs it.
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every id in the store (for tests and housekeeping, never served).
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare("SELECT id FROM explanations ORDER BY id")?;
        let ids = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// SQLite's own consistency check: "ok" for a sound file.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .connection()
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
    }
}

impl Store for SqliteStore {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT OR REPLACE INTO explanations
                 (id, request_key, secret_hash, created_unix, model, method, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                record.id,
                record.request_key.as_slice(),
                record.secret_hash.as_slice(),
                record.created_unix,
                record.model,
                record.method,
                record.explanation.encode_to_vec(),
            ],
        )?;
        transaction.commit()?;
        Ok(())
    }

    fn load(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let row = self
            .connection()
            .query_row(
                "SELECT request_key, secret_hash, created_unix, model, method, body
                 FROM explanations WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, Vec<u8>>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((key, secret, created_unix, model, method, body)) = row else {
            return Ok(None);
        };
        let row = StoredRow {
            request_key: &key,
            secret_hash: &secret,
            created_unix,
            model,
            method,
            body: &body,
        };
        decode_row(id, row).map(Some)
    }

    fn find(&self, key: &RequestKey) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT id FROM explanations WHERE request_key = ?1
                 ORDER BY created_unix DESC LIMIT 1",
                [key.as_slice()],
                |row| row.get(0),
            )
            .optional()?)
    }

    fn delete(&self, id: &str, secret: &str) -> Result<Deletion, StoreError> {
        let connection = self.connection();
        let stored: Option<Vec<u8>> = connection
            .query_row(
                "SELECT secret_hash FROM explanations WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()?;
        match stored {
            None => Ok(Deletion::NotFound),
            Some(hash) if hash != hash_secret(secret) => Ok(Deletion::WrongSecret),
            Some(_) => {
                connection.execute("DELETE FROM explanations WHERE id = ?1", [id])?;
                Ok(Deletion::Deleted)
            }
        }
    }

    fn save_faithfulness(
        &self,
        id: &str,
        removal: &str,
        result: &FaithfulnessResult,
    ) -> Result<bool, StoreError> {
        let connection = self.connection();
        let exists = connection
            .query_row("SELECT 1 FROM explanations WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            connection.execute(
                "INSERT OR REPLACE INTO faithfulness (id, removal, body) VALUES (?1, ?2, ?3)",
                params![id, removal, result.encode_to_vec()],
            )?;
        }
        Ok(exists)
    }

    fn load_faithfulness(
        &self,
        id: &str,
        removal: &str,
    ) -> Result<Option<FaithfulnessResult>, StoreError> {
        let body: Option<Vec<u8>> = self
            .connection()
            .query_row(
                "SELECT body FROM faithfulness WHERE id = ?1 AND removal = ?2",
                [id, removal],
                |row| row.get(0),
            )
            .optional()?;
        body.map(|body| decode_faithfulness(id, removal, &body))
            .transpose()
    }

    fn remove_older_than(&self, cutoff_unix: i64) -> Result<usize, StoreError> {
        Ok(self.connection().execute(
            "DELETE FROM explanations WHERE created_unix < ?1",
            [cutoff_unix],
        )?)
    }

    fn shrink_to(&self, max_bytes: u64) -> Result<usize, StoreError> {
        // Newest first, each row's size plus those of the rows newer than
        // it: the rows past the cap are the oldest ones. (SQLite reuses the
        // pages they free; the file itself does not shrink.)
        Ok(self.connection().execute(
            "DELETE FROM explanations WHERE rowid IN (
                SELECT rowid FROM (
                    SELECT rowid, SUM(length(body)) OVER (
                        ORDER BY created_unix DESC, rowid DESC
                    ) AS newest_total
                    FROM explanations
                ) WHERE newest_total > ?1
            )",
            [max_bytes as i64],
        )?)
    }
}
