//! Shared by the importer targets: a snapshot file imported into a fresh data directory.

use std::path::PathBuf;
use std::sync::OnceLock;

use rescore_features::DataDir;

/// A scratch directory of this process on tmpfs (each import fsyncs).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("rescore-fuzz-{}", std::process::id()))
    })
}

pub fn import_snapshot(data: &[u8], file_name: &str) {
    let root = scratch();
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).expect("scratch dir");
    let snapshot = root.join(file_name);
    std::fs::write(&snapshot, data).expect("write snapshot");
    let dir = DataDir::open(&root.join("data")).expect("data dir");
    let Ok(report) = dir.import(&snapshot) else {
        return;
    };
    let generation = dir
        .open_current(1 << 20)
        .expect("a published generation opens")
        .expect("a generation is live");
    assert_eq!(generation.len(), report.items);
}
