//! One test suite for every `Store`: each check runs against SQLite (a file
//! in a temporary folder) and against PostgreSQL (a private server started
//! for the test), so both keep the same semantics.
//!
//! - `a_saved_record_loads_back_unchanged`
//! - `identical_requests_find_the_newest_explanation`
//! - `only_the_creators_secret_deletes`
//! - `faithfulness_is_kept_per_removal_and_goes_with_its_explanation`
//! - `retention_removes_only_older_explanations`
//! - `a_size_cap_removes_the_oldest_explanations_first`
//!
//! PostgreSQL alone: `two_processes_share_one_database` (the schema is
//! migrated once, rows written by one are read by the other) and
//! `an_unreachable_database_is_unavailable_and_the_store_recovers`.

use lens_proto::v1::{Curves, FaithfulnessResult};
use lens_tests::postgres_server::PostgresServer;
use lens_tests::{synthetic_record, temp_folder};
use lens_worker::store::{
    hash_secret, new_id, now_unix, Deletion, PostgresStore, Record, SqliteStore, Store, StoreError,
};

const DAY: i64 = 24 * 3600;

fn record(values: usize, created_unix: i64, key: u8, secret: &str) -> Record {
    synthetic_record(values, created_unix, key, hash_secret(secret))
}

fn curves(removal: i32, auc: f64) -> FaithfulnessResult {
    FaithfulnessResult {
        removal,
        steps: 50,
        map: Some(Curves {
            deletion_auc: auc,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn a_saved_record_loads_back_unchanged(store: &dyn Store) {
    let saved = record(100, now_unix(), 1, "s");
    store.save(&saved).unwrap();
    assert_eq!(store.load(&saved.id).unwrap(), Some(saved));
    assert_eq!(store.load(&new_id()).unwrap(), None);
}

fn identical_requests_find_the_newest_explanation(store: &dyn Store) {
    let (older, newer) = (
        record(10, now_unix() - DAY, 7, "s"),
        record(10, now_unix(), 7, "s"),
    );
    store.save(&newer).unwrap();
    store.save(&older).unwrap();
    store.save(&record(10, now_unix(), 8, "s")).unwrap();
    assert_eq!(store.find(&[7; 32]).unwrap(), Some(newer.id));
    assert_eq!(store.find(&[9; 32]).unwrap(), None);
}

fn only_the_creators_secret_deletes(store: &dyn Store) {
    let saved = record(10, now_unix(), 1, "right");
    store.save(&saved).unwrap();
    assert_eq!(
        store.delete(&saved.id, "wrong").unwrap(),
        Deletion::WrongSecret
    );
    assert!(store.load(&saved.id).unwrap().is_some());
    assert_eq!(store.delete(&saved.id, "right").unwrap(), Deletion::Deleted);
    assert_eq!(store.load(&saved.id).unwrap(), None);
    assert_eq!(
        store.delete(&saved.id, "right").unwrap(),
        Deletion::NotFound
    );
}

fn faithfulness_is_kept_per_removal_and_goes_with_its_explanation(store: &dyn Store) {
    let saved = record(10, now_unix(), 1, "s");
    assert!(!store
        .save_faithfulness(&saved.id, "blur", &curves(1, 0.1))
        .unwrap());
    store.save(&saved).unwrap();
    assert!(store
        .save_faithfulness(&saved.id, "blur", &curves(1, 0.1))
        .unwrap());
    assert!(store
        .save_faithfulness(&saved.id, "grey", &curves(2, 0.2))
        .unwrap());
    // Saved again: the new curves replace the old ones.
    assert!(store
        .save_faithfulness(&saved.id, "blur", &curves(1, 0.3))
        .unwrap());
    assert_eq!(
        store.load_faithfulness(&saved.id, "blur").unwrap(),
        Some(curves(1, 0.3))
    );
    assert_eq!(
        store.load_faithfulness(&saved.id, "grey").unwrap(),
        Some(curves(2, 0.2))
    );
    assert_eq!(store.delete(&saved.id, "s").unwrap(), Deletion::Deleted);
    assert_eq!(store.load_faithfulness(&saved.id, "blur").unwrap(), None);
}

fn retention_removes_only_older_explanations(store: &dyn Store) {
    let now = now_unix();
    let records: Vec<Record> = [3, 1, 0]
        .iter()
        .map(|days| record(10, now - days * DAY, 1, "s"))
        .collect();
    for r in &records {
        store.save(r).unwrap();
    }
    assert_eq!(store.remove_older_than(now - 2 * DAY).unwrap(), 1);
    assert_eq!(store.load(&records[0].id).unwrap(), None);
    for kept in &records[1..] {
        assert!(store.load(&kept.id).unwrap().is_some());
    }
    assert_eq!(store.remove_older_than(now - 2 * DAY).unwrap(), 0);
}

fn a_size_cap_removes_the_oldest_explanations_first(store: &dyn Store) {
    // Four explanations of about 40 kB, a day apart; 100 kB keeps two.
    let now = now_unix();
    let records: Vec<Record> = (0..4)
        .map(|i| record(10_000, now - (4 - i) * DAY, i as u8, "s"))
        .collect();
    for r in &records {
        store.save(r).unwrap();
    }
    assert_eq!(store.shrink_to(100_000).unwrap(), 2);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(store.load(&r.id).unwrap().is_some(), i >= 2, "record {i}");
    }
    assert_eq!(store.shrink_to(100_000).unwrap(), 0);
}

/// Each check as a test on SQLite and on PostgreSQL.
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $check() {
                    let store = super::SqliteStore::open(&super::temp_folder("store-suite")).unwrap();
                    super::$check(&store);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $check() {
                    let server = super::PostgresServer::start();
                    let store = super::PostgresStore::open(&server.url()).unwrap();
                    super::$check(&store);
                }
            )*
        }
    };
}

on_both_stores!(
    a_saved_record_loads_back_unchanged,
    identical_requests_find_the_newest_explanation,
    only_the_creators_secret_deletes,
    faithfulness_is_kept_per_removal_and_goes_with_its_explanation,
    retention_removes_only_older_explanations,
    a_size_cap_removes_the_oldest_explanations_first,
);

#[test]
fn two_processes_share_one_database() {
    let server = PostgresServer::start();
    let first = PostgresStore::open(&server.url()).unwrap();
    // A second opening finds the schema migrated and changes nothing.
    let second = PostgresStore::open(&server.url()).unwrap();
    let saved = record(10, now_unix(), 1, "s");
    first.save(&saved).unwrap();
    assert_eq!(second.load(&saved.id).unwrap(), Some(saved.clone()));
    assert_eq!(second.delete(&saved.id, "s").unwrap(), Deletion::Deleted);
    assert_eq!(first.load(&saved.id).unwrap(), None);
    assert!(first.ids().unwrap().is_empty());
}

#[test]
fn an_unreachable_database_is_unavailable_and_the_store_recovers() {
    let server = PostgresServer::start();
    let store = PostgresStore::open(&server.url()).unwrap();
    let saved = record(10, now_unix(), 1, "s");
    store.save(&saved).unwrap();

    server.stop();
    match store.load(&saved.id) {
        Err(error @ StoreError::Unavailable { .. }) => {
            let message = error.to_string();
            let place = format!("cannot reach PostgreSQL at 127.0.0.1:{}", server.port());
            assert!(message.contains(&place), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Still unavailable on the next call (no connection to reuse), and
    // opening a store says the same.
    assert!(matches!(
        store.find(&[1; 32]),
        Err(StoreError::Unavailable { .. })
    ));
    assert!(matches!(
        PostgresStore::open(&server.url()),
        Err(StoreError::Unavailable { .. })
    ));
    match PostgresStore::open("postgres://lens@127.0.0.1:notaport/db") {
        Err(error @ StoreError::BadUrl(_)) => {
            assert!(
                error.to_string().contains("is not a PostgreSQL URL"),
                "{error}"
            )
        }
        _ => panic!("a bad URL must be refused as such"),
    }

    server.start_again();
    assert_eq!(store.load(&saved.id).unwrap(), Some(saved));
}
