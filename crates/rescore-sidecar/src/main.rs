//! rescore-sidecar: validate the configuration (exit 2 before binding if it is wrong), bind,
//! load models and items in the background (`/readyz` turns 200), serve until SIGTERM/SIGINT.

mod audit;
mod config;
mod heap;
mod items;
mod jobs;
mod suspicion;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rescore_features::{CachedItems, StoreKind};
use rescore_server::AppState;
use rescore_serving::{Discovery, ModelSources, Rescorer};

use crate::config::{Cli, Command, Config};

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
    match cli.command.take() {
        Some(Command::Items(command)) => return items::run(&cli.common, command),
        Some(Command::Monitoring(job)) => return jobs::run(job),
        None => {}
    }
    let prepared = Config::resolve(cli).and_then(|config| {
        let discovery = match &config.models {
            Some(dir) => Discovery::scan(dir)?,
            None => Discovery::default(),
        };
        let sources = ModelSources::new(config.models.clone(), config.routing.clone());
        let rescorer = Rescorer::with_sources(config.serving.clone(), &discovery, sources)?;
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
    rescore_serving::describe_guard_metrics();
    // After the recorder: the monitor registers its series when it starts.
    let monitor = rescore_monitor::Monitor::new(config.monitoring.clone())
        .map_err(|e| anyhow::anyhow!("monitoring.feature_log: {e}"))?;
    monitor.start_refresher()?;
    let rescorer = Arc::new(rescorer.with_monitor(monitor.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let admin = match &config.admin_token {
        Some(token) => {
            let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot listen on {} (admin): {e}", config.admin_listen)
                })?;
            let addr = admin_listener.local_addr()?;
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "the admin API listens beyond loopback");
            }
            tracing::info!(admin_listen = %addr, "admin API listening");
            Some((admin_listener, token.clone()))
        }
        None => {
            tracing::info!("admin API off (no RESCORE_ADMIN_TOKEN or admin_token_file)");
            None
        }
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        version = env!("CARGO_PKG_VERSION"),
        models = ?discovery.names().collect::<Vec<_>>(),
        "rescore-sidecar listening"
    );

    // Loading runs off the async workers; the server answers (with fallbacks) meanwhile.
    let redis_items = match config.item_store.backend {
        // Connections are made lazily: a Redis that is down does not delay readiness.
        StoreKind::Redis => Some(Arc::new(items::redis_items(&config.item_store)?)),
        StoreKind::Embedded | StoreKind::Layered => None,
    };
    let layered_redis = match config.item_store.backend {
        StoreKind::Layered => Some(items::redis_store(&config.item_store)?),
        StoreKind::Embedded | StoreKind::Redis => None,
    };
    let loader = {
        let rescorer = rescorer.clone();
        let items_path = config.items.clone();
        let data_dir = config.data_dir.clone();
        let store_config = config.item_store.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Option<Arc<CachedItems>>, Option<rescore_serving::Watcher>)> {
            let items = match (redis_items, items_path) {
                (Some(redis), _) => Some(redis),
                (None, Some(path)) => Some(Arc::new(items::snapshot_items(
                    &path,
                    &data_dir,
                    &store_config,
                    layered_redis,
                )?)),
                (None, None) => None,
            };
            rescorer.load_initial(&discovery, items.clone());
            tracing::info!("ready");
            // Watch only once loaded: changes before that are read by start-up loading.
            let watcher = rescore_serving::spawn_watcher(rescorer)?;
            Ok((items, watcher))
        })
    };
    let mut watcher = None;

    let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
    if let Some((admin_listener, token)) = admin {
        let admin_state = rescore_server::admin::AdminState {
            rescorer: rescorer.clone(),
            token: token.into(),
        };
        let admin_server = axum::serve(admin_listener, rescore_server::admin::app(admin_state))
            .with_graceful_shutdown(async {
                let _ = admin_stop_rx.await;
            });
        tokio::spawn(async move {
            if let Err(e) = admin_server.await {
                tracing::error!(error = %e, "admin API stopped");
            }
        });
    }
    #[cfg(unix)]
    {
        let rescorer = rescorer.clone();
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let rescorer = rescorer.clone();
                tracing::info!("SIGHUP: reloading models and routing");
                let _ = tokio::task::spawn_blocking(move || {
                    rescorer.reload(rescore_monitor::reload_trigger::SIGHUP)
                })
                .await;
            }
        });
    }

    // The exporter keeps every histogram sample until something drains it: a scrape, or this.
    // Without it a sidecar nobody scrapes holds each request's samples (several per request)
    // until the next scrape, megabytes per second under load.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(rescore_monitor::UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    if config.server.heap_trim_interval_ms > 0 {
        heap::spawn_trim_after_bursts(
            rescorer.clone(),
            Duration::from_millis(config.server.heap_trim_interval_ms),
        );
    }
    let state = AppState {
        rescorer,
        metrics: Some(metrics),
        body_limit: config.server.body_limit_bytes,
        body_timeout: Duration::from_millis(config.server.body_timeout_ms),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = rescore_server::listener::ConnectionLimits {
        max_connections: config.server.max_connections,
        header_timeout: Duration::from_millis(config.server.header_timeout_ms),
    };
    let server =
        rescore_server::listener::serve(listener, rescore_server::app(state), limits, async {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);
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
                        Ok(Ok((items, w))) => {
                            watcher = w;
                            // Newer generations published into the data directory (by `items
                            // import|put|delete`) are picked up while serving.
                            if let (Some(items), Some(snapshot)) = (items, &config.items) {
                                if items.generation().is_some() {
                                    items::watch_generations(items, config.data_dir.clone(), snapshot, &config.item_store);
                                }
                            }
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(e) => anyhow::bail!("loading task failed: {e}"),
                    }
                }
                () = &mut shutdown => {
                    tracing::info!("shutting down: finishing in-flight requests");
                    drop(watcher.take());
                    let _ = stop_tx.send(());
                    let _ = admin_stop_tx.send(());
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
