//! rescore-sidecar: validate the configuration (exit 2 before binding if it is wrong), bind,
//! load models and items in the background (`/readyz` turns 200), serve until SIGTERM/SIGINT.

mod config;
mod items;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rescore_features::{CachedItems, StoreKind};
use rescore_server::AppState;
use rescore_serving::{Discovery, Registry, Rescorer};

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
    if let Some(Command::Items(command)) = cli.command.take() {
        return items::run(&cli.common, command);
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
    let rescorer = Arc::new(rescorer);
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
    let redis_items = match config.item_store.backend {
        // Connections are made lazily: a Redis that is down does not delay readiness.
        StoreKind::Redis => Some(Arc::new(items::redis_items(&config.item_store)?)),
        StoreKind::Embedded => None,
    };
    let loader = {
        let rescorer = rescorer.clone();
        let items_path = config.items.clone();
        let data_dir = config.data_dir.clone();
        let store_config = config.item_store.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Arc<CachedItems>>> {
            let items = match (redis_items, items_path) {
                (Some(redis), _) => Some(redis),
                (None, Some(path)) => Some(Arc::new(items::embedded_items(
                    &path,
                    &data_dir,
                    &store_config,
                )?)),
                (None, None) => None,
            };
            let registry = Registry::load(&discovery, rescorer.config());
            rescorer.set_loaded(registry, items.clone());
            tracing::info!("ready");
            Ok(items)
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
    loop {
        tokio::select! {
            result = &mut server => return result.map_err(Into::into),
            loaded = &mut loader, if loading => {
                loading = false;
                match loaded {
                    Ok(Ok(items)) => {
                        // Newer generations published into the data directory (by `items
                        // import|put|delete`) are picked up while serving.
                        if let (Some(items), Some(_)) = (items, &config.items) {
                            if items.generation().is_some() {
                                items::watch_generations(items, config.data_dir.clone(), &config.item_store);
                            }
                        }
                    }
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
