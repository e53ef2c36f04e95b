//! rescore-sidecar: validate the configuration (exit 2 before binding if it is wrong), bind,
//! load models and items in the background (`/readyz` turns 200), serve until SIGTERM/SIGINT.

mod config;
mod jobs;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rescore_features::{CachedItems, EmbeddedStore, ItemStore};
use rescore_server::AppState;
use rescore_serving::{Discovery, Registry, Rescorer};

use crate::config::{Cli, Config};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut cli = Cli::parse();
    if let Some(job) = cli.command.take() {
        return jobs::run(job);
    }
    let prepared = Config::resolve(cli).and_then(|config| {
        let discovery = match &config.models {
            Some(dir) => Discovery::scan(dir)?,
            None => Discovery::default(),
        };
        let rescorer = Rescorer::new(config.serving.clone(), &discovery)?;
        Ok((config, discovery, rescorer))
    });
    let (config, discovery, rescorer) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rescore-sidecar: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rescore-sidecar: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(config, discovery, rescorer));
    // Do not wait for blocking work that nobody awaits any more (start-up loading interrupted
    // by a signal, scoring of requests that already got their fallback).
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, discovery: Discovery, rescorer: Rescorer) -> anyhow::Result<()> {
    let metrics = rescore_monitor::install_recorder()?;
    rescore_features::describe_metrics();
    // After the recorder: the monitor registers its series when it starts.
    let monitor = rescore_monitor::Monitor::new(config.monitoring.clone())
        .map_err(|e| anyhow::anyhow!("monitoring.feature_log: {e}"))?;
    monitor.start_refresher()?;
    let rescorer = Arc::new(rescorer.with_monitor(monitor.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        version = env!("CARGO_PKG_VERSION"),
        models = ?discovery.names().collect::<Vec<_>>(),
        "rescore-sidecar listening"
    );

    // Loading runs off the async workers; the server answers (with fallbacks) meanwhile.
    let loader = {
        let rescorer = rescorer.clone();
        let items_path = config.items.clone();
        let capacity = config.serving.item_cache_capacity;
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let items = match items_path {
                Some(path) => {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| anyhow::anyhow!("--items {}: {e}", path.display()))?;
                    let store = EmbeddedStore::from_jsonl(std::io::BufReader::new(file))
                        .map_err(|e| anyhow::anyhow!("--items {}: {e}", path.display()))?;
                    tracing::info!(items = store.len(), path = %path.display(), "item store loaded");
                    Some(Arc::new(CachedItems::new(
                        Arc::new(store) as Arc<dyn ItemStore>,
                        capacity,
                    )))
                }
                None => None,
            };
            let registry =
                Registry::load_monitored(&discovery, rescorer.config(), rescorer.monitor());
            rescorer.set_loaded(registry, items);
            tracing::info!("ready");
            Ok(())
        })
    };

    let state = AppState {
        rescorer,
        metrics: Some(metrics),
        body_limit: config.server.body_limit_bytes,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, rescore_server::app(state)).with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let mut server = std::pin::pin!(std::future::IntoFuture::into_future(server));
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);

    // A snapshot that cannot be read is an operator error: stop rather than serve without it.
    let mut loader = std::pin::pin!(loader);
    let mut loading = true;
    // Created once, so a signal between two loop turns is not lost.
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                result = &mut server => return result.map_err(Into::into),
                loaded = &mut loader, if loading => {
                    loading = false;
                    match loaded {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(e),
                        Err(e) => anyhow::bail!("loading task failed: {e}"),
                    }
                }
                () = &mut shutdown => {
                    tracing::info!("shutting down: finishing in-flight requests");
                    let _ = stop_tx.send(());
                    return match tokio::time::timeout(grace, server).await {
                        Ok(result) => result.map_err(Into::into),
                        Err(_) => { tracing::warn!("grace period over; exiting"); Ok(()) }
                    };
                }
            }
        }
    }
    .await;
    // Sampled feature-log records still queued are written before exiting.
    monitor.close();
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
