//! File-system triggered reloads: changes under `--models` and to the routing file are
//! gathered until the directory is quiet for `debounce_ms` (an upload writes several files),
//! then one reload runs on the watcher's own thread, off the request path. Reads (including
//! the reload's own directory scans) are not changes.

use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use rescore_monitor as mon;

use crate::Rescorer;

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    path: String,
    source: notify::Error,
}

/// Keeps the watch alive while held; dropping it stops the watch and its thread.
pub struct Watcher(#[allow(dead_code)] RecommendedWatcher);

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// Watches the models directory (recursively) and the routing file; `None` when there is
/// nothing to watch or `serving.reload.watch` is off.
pub fn spawn_watcher(rescorer: Arc<Rescorer>) -> Result<Option<Watcher>, WatchError> {
    let config = rescorer.config().reload.clone();
    let sources = rescorer.sources().clone();
    let Some(models_dir) = sources.models_dir.clone() else {
        return Ok(None);
    };
    if !config.watch {
        return Ok(None);
    }
    let routing = sources.routing_path.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let relevant_dir = models_dir.clone();
    let mut watcher =
        notify::recommended_watcher(move |result: notify::Result<Event>| match result {
            Ok(event) if is_change(&event.kind) => {
                let relevant = event.paths.iter().any(|p| {
                    routing.as_deref() == Some(p.as_path())
                        || p.strip_prefix(&relevant_dir)
                            .is_ok_and(|rel| !is_hidden(rel))
                });
                if relevant {
                    let _ = tx.send(());
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "file watch error"),
        })
        .map_err(|source| WatchError {
            path: models_dir.display().to_string(),
            source,
        })?;
    let mut watch = |path: &Path, mode| {
        watcher.watch(path, mode).map_err(|source| WatchError {
            path: path.display().to_string(),
            source,
        })
    };
    watch(&models_dir, RecursiveMode::Recursive)?;
    if let Some(routing) = &sources.routing_path {
        // Inside the models directory it is already watched; elsewhere watch its directory
        // (editors and the admin API replace the file, which a watch on the file would miss).
        if !routing.starts_with(&models_dir) {
            let parent = routing
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            watch(&parent, RecursiveMode::NonRecursive)?;
        }
    }
    let debounce = Duration::from_millis(config.debounce_ms);
    std::thread::Builder::new()
        .name("reload-watch".into())
        .spawn(move || {
            // Ends when the watcher (the only sender) is dropped.
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(debounce) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let report = rescorer.reload(mon::reload_trigger::WATCH);
                if report.result != mon::reload_result::SUCCESS {
                    tracing::warn!(errors = ?report.errors, "reload after a file change did not fully apply");
                }
            }
        })
        .map_err(|e| WatchError {
            path: models_dir.display().to_string(),
            source: notify::Error::io(e),
        })?;
    Ok(Some(Watcher(watcher)))
}

/// Creations, writes, renames, removals and metadata changes; not opens, reads or closes.
fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    )
}

/// Temporary files (`.routing.toml.tmp`, `.upload-3/`) do not trigger reloads (`path` is
/// relative to the models directory).
fn is_hidden(path: &Path) -> bool {
    path.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with('.') && s != "." && s != "..")
    })
}
