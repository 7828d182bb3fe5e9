//! A row read back from the store's file, which anything may have changed:
//! the first 64 bytes are the request key and secret hash, the rest the body.

#![no_main]

use lens_worker::store::{decode_row, StoredRow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let (key, rest) = bytes.split_at(bytes.len().min(32));
    let (secret, body) = rest.split_at(rest.len().min(32));
    let row = StoredRow {
        request_key: key,
        secret_hash: secret,
        created_unix: 0,
        model: "digits".into(),
        method: "EfficientPda".into(),
        body,
    };
    if let Ok(record) = decode_row("0123456789abcdef0123456789abcdef", row) {
        // What is trusted is consistent.
        if let Some(map) = record.explanation.map {
            assert_eq!(map.width as usize * map.height as usize, map.values.len());
        }
    }
});
