//! The Parquet item snapshot importer: any file is an error naming the problem or a store
//! whose item count is what the import reported.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/import.rs"]
mod import;

fuzz_target!(|data: &[u8]| {
    import::import_snapshot(data, "items.parquet");
});
