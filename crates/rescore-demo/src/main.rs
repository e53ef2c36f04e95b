//! `rescore-demo`: an end-to-end demonstration of the rescore sidecar on a synthetic second-hand
//! marketplace (see docs/demo.md).
//!
//! * `build` generates the marketplace from a seed, trains a LightGBM LambdaRank model on its
//!   training queries and writes `models/marketplace/1/` plus the item snapshot.
//! * `replay` regenerates the same marketplace, sends the held-out queries to a running sidecar
//!   and reports NDCG@10 before and after re-ranking, fallbacks and latency; with `--engine`
//!   it sends them as searches to Elasticsearch/OpenSearch with the `sidecar` rescorer instead.
//! * `index` puts the catalogue into a search engine index for `replay --engine`.
//! * `bench-engine` times the same searches without and with the rescore (bench/engine-demo.sh).

mod bench;
mod bm25;
mod catalog;
mod engine;
mod export;
mod features;
mod gaming;
mod metrics;
mod replay;
mod train;
mod world;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Synthetic marketplace demo for the rescore sidecar")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the marketplace, train the model, write the model directory and item snapshot.
    Build(train::BuildArgs),
    /// Replay held-out queries against a running sidecar and check the NDCG gain.
    Replay(replay::ReplayArgs),
    /// Index the marketplace catalogue into Elasticsearch or OpenSearch (for `replay --engine`).
    Index(engine::IndexArgs),
    /// Time the demo's searches through the engine without and with the sidecar rescore
    /// (windows x client concurrencies); bench/engine-demo.sh runs it on real nodes.
    BenchEngine(bench::BenchArgs),
    /// Write the demo model's training data (libsvm + .query), e.g. for reference statistics.
    TrainingData(train::TrainingDataArgs),
    /// Write the item snapshot of a world with gamed listings, with suspicion columns
    /// (for `replay --gamed-share`, docs/demo.md).
    GamedItems(gaming::GamedItemsArgs),
    /// Write the world as CSV for the traffic simulator and SQL pipelines (docs/pipelines.md).
    ExportWorld(export::ExportArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Build(args) => train::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => replay::run(&args),
        Command::Index(args) => engine::run_index(&args),
        Command::BenchEngine(args) => bench::run(&args),
        Command::TrainingData(args) => train::run_training_data(&args).map(|()| ExitCode::SUCCESS),
        Command::ExportWorld(args) => export::run(&args).map(|()| ExitCode::SUCCESS),
        Command::GamedItems(args) => gaming::run_gamed_items(&args).map(|()| ExitCode::SUCCESS),
    }
}
