//! The JSON Lines item importers: `items put|delete|apply` update lines, and a snapshot
//! imported into an embedded store (a data directory on tmpfs). Any input is a line-numbered
//! error or a store whose item count is what the import reported.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rescore_features::{parse_updates, OpKind};

#[path = "../src/import.rs"]
mod import;

fuzz_target!(|data: &[u8]| {
    for default_op in [None, Some(OpKind::Put), Some(OpKind::Delete)] {
        for update in parse_updates(data, default_op) {
            let _ = update;
        }
    }
    import::import_snapshot(data, "items.jsonl");
});
