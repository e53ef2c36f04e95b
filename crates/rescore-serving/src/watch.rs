//! File-system triggered reloads: changes under `--models` and to the routing file are
//! debounced (an upload writes several files), then one reload runs on the watcher's thread,
//! off the request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use rescore_monitor as mon;

use crate::Rescorer;

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    path: String,
    source: notify_debouncer_mini::notify::Error,
}

/// Keeps the watch alive while held.
pub struct Watcher(#[allow(dead_code)] Debouncer<RecommendedWatcher>);

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
    if !config.watch || sources.models_dir.is_none() {
        return Ok(None);
    }
    let routing = sources.routing_path.clone();
    let models_dir = sources.models_dir.clone();
    let handler = move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "file watch error");
                return;
            }
        };
        let relevant = events.iter().any(|e| {
            routing.as_deref() == Some(e.path.as_path())
                || models_dir
                    .as_deref()
                    .and_then(|d| e.path.strip_prefix(d).ok())
                    .is_some_and(|rel| !is_hidden(rel))
        });
        if relevant {
            let report = rescorer.reload(mon::reload_trigger::WATCH);
            if report.result != mon::reload_result::SUCCESS {
                tracing::warn!(errors = ?report.errors, "reload after a file change did not fully apply");
            }
        }
    };
    let mut debouncer =
        new_debouncer(Duration::from_millis(config.debounce_ms), handler).map_err(|source| {
            WatchError {
                path: String::new(),
                source,
            }
        })?;
    let watch = |debouncer: &mut Debouncer<RecommendedWatcher>, path: &Path, mode| {
        debouncer
            .watcher()
            .watch(path, mode)
            .map_err(|source| WatchError {
                path: path.display().to_string(),
                source,
            })
    };
    let models_dir = sources.models_dir.clone().unwrap_or_default();
    watch(&mut debouncer, &models_dir, RecursiveMode::Recursive)?;
    if let Some(routing) = &sources.routing_path {
        // Inside the models directory it is already watched; elsewhere watch its directory
        // (editors and the admin API replace the file, which a watch on the file would miss).
        if !routing.starts_with(&models_dir) {
            let parent = routing
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            watch(&mut debouncer, &parent, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(Some(Watcher(debouncer)))
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
