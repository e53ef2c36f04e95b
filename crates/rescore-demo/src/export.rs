//! `rescore-demo export-world`: the generated world as CSV files for the traffic simulator and
//! the SQL pipelines (docs/pipelines.md). Hidden values (true intent, relevance grades) go to
//! files named `oracle_*`, which only the simulator and the offline evaluation read; the
//! pipelines never do.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::world::{item_id, user_id, World};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Seed of the synthetic world.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn create(dir: &std::path::Path, name: &str) -> Result<BufWriter<fs::File>> {
    let path = dir.join(name);
    let f = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::new(f))
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let world = World::generate(args.seed);
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let mut items = create(&args.out, "items.csv")?;
    writeln!(
        items,
        "item_id,category,brand,price,condition,seller_rating,age_days,popularity"
    )?;
    for (n, item) in world.items.iter().enumerate() {
        let f = &item.features;
        writeln!(
            items,
            "{},{},{},{},{},{},{},{}",
            item_id(n),
            f.category,
            f.brand,
            f.price,
            f.condition,
            f.seller_rating,
            f.age_days,
            f.popularity
        )?;
    }
    items.flush()?;

    // What the search service knows about a query (text, user, the client's features).
    let mut queries = create(&args.out, "queries.csv")?;
    writeln!(
        queries,
        "query_id,user_id,query_text,kind,held_out,classifier_category,user_budget,user_brand"
    )?;
    // Hidden: the true intent and each candidate's grade (the simulated users' relevance).
    let mut oracle_q = create(&args.out, "oracle_queries.csv")?;
    writeln!(oracle_q, "query_id,true_intent")?;
    let mut cands = create(&args.out, "candidates.csv")?;
    writeln!(cands, "query_id,bm25_rank,item_id,bm25")?;
    let mut oracle_c = create(&args.out, "oracle_grades.csv")?;
    writeln!(oracle_c, "query_id,item_id,grade")?;
    for q in &world.queries {
        let f = &q.features;
        writeln!(
            queries,
            "q{},{},\"{}\",{},{},{},{},{}",
            q.id,
            user_id(q.user),
            q.text,
            q.kind.as_str(),
            q.held_out,
            f.intent_category,
            opt(f.user_budget),
            opt(f.user_brand)
        )?;
        writeln!(oracle_q, "q{},{}", q.id, q.intent)?;
        for (rank, c) in q.candidates.iter().enumerate() {
            writeln!(
                cands,
                "q{},{},{},{}",
                q.id,
                rank + 1,
                item_id(c.item),
                c.score
            )?;
            writeln!(oracle_c, "q{},{},{}", q.id, item_id(c.item), c.label)?;
        }
    }
    for mut w in [queries, oracle_q, cands, oracle_c] {
        w.flush()?;
    }
    println!(
        "exported {} items, {} queries to {}",
        world.items.len(),
        world.queries.len(),
        args.out.display()
    );
    Ok(())
}
