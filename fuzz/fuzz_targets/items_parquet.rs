//! The Parquet item snapshot importer: any file is an error naming the problem or a store
//! whose item count is what the import reported.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/import.rs"]
mod import;

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // The importer turns the parquet crate's own panics on damaged files into errors
    // (`catch_unwind` in parquet_snapshot.rs); libFuzzer's hook would abort on those caught
    // panics. Any other panic (ours) still aborts: a crash.
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let in_parquet = info
                .location()
                .is_some_and(|l| l.file().contains("/parquet-"));
            if !in_parquet {
                eprintln!("{info}");
                std::process::abort();
            }
        }))
    });
    import::import_snapshot(data, "items.parquet");
});
