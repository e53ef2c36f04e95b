//! Gamed listings in the demo (issue 19, ADR 0011): the manifest's `[guard]`, the annotated
//! item snapshot of a world with gamed listings (`rescore-demo gamed-items`), and the replay's
//! evaluation of the guard policies off / flag / cap against a running sidecar.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use rescore_api::{GuardPolicy, GuardRequest, RescoreResponse};
use rescore_features::suspicion::{
    ItemValues, SuspicionConfig, SuspicionModel, RULES_COLUMN, SUSPICION_COLUMN,
};
use rescore_features::FeatureDecl;
use serde::Deserialize;

use crate::features::MANIFEST;
use crate::metrics::{ndcg_at, order_by_scores};
use crate::replay::request_for;
use crate::world::{item_id, Query, World, WorldOptions};

/// `cap_score` is this quantile of the model's scores over the training candidates: a capped
/// hit lands where a typical candidate does, on every shard alike.
pub const CAP_QUANTILE: f64 = 0.5;
/// Suspicion at or above which a lifted hit is flagged.
pub const THRESHOLD: f64 = 0.995;
/// Places above its first-pass rank that make a hit lifted.
pub const MIN_RANK_JUMP: usize = 5;
/// The share of gamed listings the evaluation uses by default (docs/demo.md).
pub const DEFAULT_GAMED_SHARE: f64 = 0.02;

/// The manifest written beside `model.txt`: [`MANIFEST`] and the guard, off by default.
pub fn manifest(cap_score: f64) -> String {
    format!(
        "{MANIFEST}\n# Gamed-listing guard (ADR 0011): off; `cap_score` = the median of the model's\n\
         # scores over the training candidates.\n[guard]\npolicy = \"off\"\nthreshold = {THRESHOLD}\n\
         min_rank_jump = {MIN_RANK_JUMP}\ncap_score = {cap_score}\n"
    )
}

/// The `q` quantile (nearest rank) of every score.
pub fn cap_score(scores: &[Vec<f64>]) -> f64 {
    let mut all: Vec<f64> = scores.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let rank = ((all.len() as f64 - 1.0) * CAP_QUANTILE).round() as usize;
    all.get(rank).copied().unwrap_or(0.0)
}

/// The parts of the demo manifest suspicion needs (the rest is the sidecar's business).
#[derive(Deserialize)]
struct SuspicionManifest {
    features: BTreeMap<String, FeatureDecl>,
    suspicion: SuspicionConfig,
}

/// Every item's features with the suspicion columns the sidecar's `items suspicion` would add.
pub fn annotated_items(world: &World) -> Result<Vec<(String, ItemValues)>> {
    let manifest: SuspicionManifest = toml::from_str(MANIFEST).context("demo manifest")?;
    manifest.suspicion.validate().map_err(anyhow::Error::msg)?;
    let seller = rescore_features::seller_controlled_keys(&manifest.features)?;
    let mut items: Vec<(String, ItemValues)> = world
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let f = &item.features;
            let values = [
                ("category", f64::from(f.category)),
                ("brand", f64::from(f.brand)),
                ("price", f.price),
                ("condition", f64::from(f.condition)),
                ("seller_rating", f.seller_rating),
                ("age_days", f64::from(f.age_days)),
                ("popularity", f64::from(f.popularity)),
            ];
            let map = values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            (item_id(i), map)
        })
        .collect();
    let scores = SuspicionModel::annotate(&manifest.suspicion, &seller, &items);
    for ((_, values), s) in items.iter_mut().zip(scores) {
        values.insert(SUSPICION_COLUMN.into(), s.score);
        values.insert(RULES_COLUMN.into(), f64::from(s.rules));
    }
    Ok(items)
}

#[derive(Debug, clap::Args)]
pub struct GamedItemsArgs {
    /// Seed of the world (the model's).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of gamed listings.
    #[arg(long, default_value_t = DEFAULT_GAMED_SHARE)]
    gamed_share: f64,
    /// Where to write the annotated snapshot (JSON Lines).
    #[arg(long)]
    out: PathBuf,
}

fn check_share(share: f64) -> Result<()> {
    ensure!(
        (0.0..=0.5).contains(&share),
        "--gamed-share {share}: must be within 0..=0.5"
    );
    Ok(())
}

/// `rescore-demo gamed-items`: the world with gamed listings, its items annotated.
pub fn run_gamed_items(args: &GamedItemsArgs) -> Result<()> {
    check_share(args.gamed_share)?;
    let world = World::generate_with(
        args.seed,
        WorldOptions {
            gamed_share: args.gamed_share,
        },
    );
    let items = annotated_items(&world)?;
    write_jsonl(&items, &args.out)?;
    let gamed = world.items.iter().filter(|i| i.gamed.is_some()).count();
    println!(
        "wrote {} items ({gamed} gamed) to {}",
        items.len(),
        args.out.display()
    );
    Ok(())
}

fn write_jsonl(items: &[(String, ItemValues)], path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for (id, features) in items {
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({"id": id, "features": features}),
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Figures of one policy over the replayed queries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PolicyFigures {
    pub queries: usize,
    /// Gamed listings among all top-10 positions, and how many of them were flagged.
    pub gamed_in_top10: usize,
    pub gamed_in_top10_flagged: usize,
    pub top10_slots: usize,
    /// Sum of NDCG@10 on the true (honest) grades, over the queries with a relevant candidate.
    pub ndcg: f64,
    pub ndcg_queries: usize,
    pub flagged: usize,
    pub flagged_gamed: usize,
    /// Gamed listings in the top 10 of policy `off`, and how many of them this policy flagged.
    pub gamed_in_off_top10: usize,
    pub flagged_of_off_top10_gamed: usize,
    /// Honest listings in this policy's top 10, and how many of them were flagged.
    pub honest_top10: usize,
    pub honest_top10_flagged: usize,
    /// Flagged hits by rule: (gamed, honest).
    pub by_rule: BTreeMap<String, (usize, usize)>,
}

impl PolicyFigures {
    pub fn gamed_share_top10(&self) -> f64 {
        ratio(self.gamed_in_top10, self.top10_slots)
    }
    pub fn precision(&self) -> f64 {
        ratio(self.flagged_gamed, self.flagged)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.flagged_of_off_top10_gamed, self.gamed_in_off_top10)
    }
    pub fn mean_ndcg(&self) -> f64 {
        self.ndcg / self.ndcg_queries.max(1) as f64
    }
    pub fn honest_flagged_share(&self) -> f64 {
        ratio(self.honest_top10_flagged, self.honest_top10)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// One answered query under one policy: scores and per-hit flags.
pub struct Answer {
    pub scores: Vec<f64>,
    pub flags: Vec<Vec<String>>,
}

/// Tallies one query's answers to policy `off` and to `policy`.
pub fn tally(
    figures: &mut PolicyFigures,
    world: &World,
    query: &Query,
    off: &Answer,
    answer: &Answer,
) {
    let gamed = |c: usize| world.items[query.candidates[c].item].gamed.is_some();
    let flagged = |c: usize| !answer.flags.get(c).is_none_or(Vec::is_empty);
    let labels: Vec<u8> = query.candidates.iter().map(|c| c.label).collect();
    let order = order_by_scores(&answer.scores);
    let top: Vec<usize> = order.iter().copied().take(10).collect();
    let off_order = order_by_scores(&off.scores);
    figures.queries += 1;
    figures.top10_slots += top.len();
    figures.gamed_in_top10 += top.iter().filter(|&&c| gamed(c)).count();
    figures.gamed_in_top10_flagged += top.iter().filter(|&&c| gamed(c) && flagged(c)).count();
    if let Some(v) = ndcg_at(&labels, &order, 10) {
        figures.ndcg += v;
        figures.ndcg_queries += 1;
    }
    for c in 0..query.candidates.len() {
        if flagged(c) {
            figures.flagged += 1;
            figures.flagged_gamed += usize::from(gamed(c));
            let entry = figures
                .by_rule
                .entry(answer.flags[c][0].clone())
                .or_default();
            if gamed(c) {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    for &c in off_order.iter().take(10).filter(|&&c| gamed(c)) {
        figures.gamed_in_off_top10 += 1;
        figures.flagged_of_off_top10_gamed += usize::from(flagged(c));
    }
    for &c in top.iter().filter(|&&c| !gamed(c)) {
        figures.honest_top10 += 1;
        figures.honest_top10_flagged += usize::from(flagged(c));
    }
}

/// The targets of issue 19, as problems (empty: all met).
pub fn check_targets(
    off: &PolicyFigures,
    flag: &PolicyFigures,
    cap: &PolicyFigures,
) -> Vec<String> {
    let mut problems = Vec::new();
    let cut = 1.0 - ratio(cap.gamed_in_top10, off.gamed_in_top10);
    if off.gamed_in_top10 == 0 {
        problems.push(
            "no gamed listing reached a top 10 without the guard: nothing to evaluate".into(),
        );
    } else if cut.is_nan() || cut < 0.7 {
        problems.push(format!(
            "cap cut gamed listings in the top 10 by {:.1}% (target >= 70%)",
            cut * 100.0
        ));
    }
    let drop = off.mean_ndcg() - cap.mean_ndcg();
    if drop >= 0.005 {
        problems.push(format!(
            "NDCG@10 dropped by {drop:.4} under cap (target < 0.005)"
        ));
    }
    for (name, f) in [("flag", flag), ("cap", cap)] {
        let share = f.honest_flagged_share();
        if share.is_nan() || share >= 0.01 {
            problems.push(format!(
                "{name}: {:.2}% of honest top-10 listings flagged (target < 1%)",
                share * 100.0
            ));
        }
    }
    problems
}

/// Replays the queries of the gamed world under each policy and prints the table; the error
/// lists the missed targets.
pub fn evaluate(
    agent: &ureq::Agent,
    endpoint: &str,
    seed: u64,
    gamed_share: f64,
    queries: usize,
    timeout_ms: u64,
) -> Result<Vec<String>> {
    check_share(gamed_share)?;
    let world = World::generate_with(seed, WorldOptions { gamed_share });
    let queries: Vec<&Query> = world.held_out_queries().take(queries).collect();
    let policies = [GuardPolicy::Off, GuardPolicy::Flag, GuardPolicy::Cap];
    let mut figures: Vec<PolicyFigures> = vec![PolicyFigures::default(); policies.len()];
    let mut problems = Vec::new();
    let mut took_us: Vec<Vec<f64>> = vec![Vec::new(); policies.len()];
    for query in &queries {
        let mut answers = Vec::new();
        for (p, policy) in policies.iter().enumerate() {
            let mut request = request_for(query, timeout_ms);
            request.guard = Some(GuardRequest {
                flags: true,
                policy: Some(*policy),
            });
            let response: RescoreResponse = agent
                .post(endpoint)
                .send_json(&request)
                .map_err(anyhow::Error::from)
                .and_then(|r| r.into_json().map_err(Into::into))
                .with_context(|| format!("query {} policy {}", query.id, policy.as_str()))?;
            ensure!(
                response.fallback.is_none(),
                "query {}: fallback {:?}",
                query.id,
                response.fallback
            );
            let flags = response.flags.context("the sidecar sent no `flags`")?;
            ensure!(
                response.scores.len() == query.candidates.len()
                    && flags.len() == response.scores.len(),
                "query {}: scores or flags do not match the hits",
                query.id
            );
            took_us[p].push(response.took_us as f64);
            answers.push(Answer {
                scores: response.scores,
                flags,
            });
        }
        for (p, answer) in answers.iter().enumerate() {
            tally(&mut figures[p], &world, query, &answers[0], answer);
        }
    }
    let gamed_items = world.items.iter().filter(|i| i.gamed.is_some()).count();
    println!(
        "\ngamed listings: {gamed_items} of {} items (--gamed-share {gamed_share}); {} queries per policy",
        world.items.len(),
        queries.len()
    );
    println!("| policy | gamed in top 10 | flags precision | flags recall (off top-10 gamed) | honest top-10 flagged | NDCG@10 (honest grades) | server took_us mean |");
    println!("|---|---|---|---|---|---|---|");
    for ((policy, f), took) in policies.iter().zip(&figures).zip(&took_us) {
        let mean_took = took.iter().sum::<f64>() / took.len().max(1) as f64;
        let (precision, recall) = if *policy == GuardPolicy::Off {
            ("–".to_string(), "–".to_string())
        } else {
            (
                format!("{:.3} ({}/{})", f.precision(), f.flagged_gamed, f.flagged),
                format!(
                    "{:.3} ({}/{})",
                    f.recall(),
                    f.flagged_of_off_top10_gamed,
                    f.gamed_in_off_top10
                ),
            )
        };
        println!(
            "| {} | {:.2}% ({}/{}) | {precision} | {recall} | {:.2}% ({}/{}) | {:.4} | {mean_took:.0} |",
            policy.as_str(),
            f.gamed_share_top10() * 100.0,
            f.gamed_in_top10,
            f.top10_slots,
            f.honest_flagged_share() * 100.0,
            f.honest_top10_flagged,
            f.honest_top10,
            f.mean_ndcg()
        );
    }
    println!(
        "flagged hits by rule (gamed, honest): {:?}; gamed in the top 10 under cap: {} flagged (capped, still in the top 10), {} not flagged",
        figures[1].by_rule,
        figures[2].gamed_in_top10_flagged,
        figures[2].gamed_in_top10 - figures[2].gamed_in_top10_flagged
    );
    problems.extend(check_targets(&figures[0], &figures[1], &figures[2]));
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamed_world_keeps_the_honest_listings_and_fakes_the_gamed_ones() {
        let honest = World::generate(42);
        let gamed = World::generate_with(42, WorldOptions { gamed_share: 0.02 });
        let n = gamed.items.iter().filter(|i| i.gamed.is_some()).count();
        assert!((150..=250).contains(&n), "{n} gamed of 10000");
        for (h, g) in honest.items.iter().zip(&gamed.items) {
            match &g.gamed {
                None => assert_eq!(h, g),
                Some(truth) => {
                    assert_ne!(&g.features, truth, "a gamed listing fakes something");
                    assert!(truth.condition <= 1);
                }
            }
        }
        // The default world is the one the model was trained on.
        assert_eq!(World::generate_with(42, WorldOptions::default()), honest);
    }

    #[test]
    fn suspicion_finds_most_gamed_listings_and_few_honest_ones() -> Result<()> {
        let world = World::generate_with(42, WorldOptions { gamed_share: 0.02 });
        let items = annotated_items(&world)?;
        let (mut gamed_hit, mut gamed, mut honest_hit) = (0, 0, 0);
        let mut by_rule = [0usize; 4];
        for (item, (_, values)) in world.items.iter().zip(&items) {
            let suspicious = values[SUSPICION_COLUMN] >= THRESHOLD;
            if item.gamed.is_some() {
                by_rule[values[RULES_COLUMN] as usize] += 1;
            }
            if item.gamed.is_some() {
                gamed += 1;
                gamed_hit += usize::from(suspicious);
            } else {
                honest_hit += usize::from(suspicious);
            }
        }
        assert!(
            gamed_hit * 10 >= gamed * 6,
            "{gamed_hit} of {gamed} gamed suspicious"
        );
        assert!(
            honest_hit * 100 <= world.items.len() * 3,
            "{honest_hit} honest suspicious"
        );
        Ok(())
    }

    #[test]
    fn targets_fail_when_cap_does_not_cut() {
        let off = PolicyFigures {
            queries: 10,
            gamed_in_top10: 20,
            ndcg: 5.0,
            ndcg_queries: 10,
            honest_top10: 80,
            ..Default::default()
        };
        let weak_cap = PolicyFigures {
            gamed_in_top10: 10,
            ..off.clone()
        };
        let problems = check_targets(&off, &off, &weak_cap);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("50.0%"));
        let good_cap = PolicyFigures {
            gamed_in_top10: 2,
            ..off.clone()
        };
        assert!(check_targets(&off, &off, &good_cap).is_empty());
    }

    #[test]
    fn manifest_with_the_guard_parses() {
        let text = manifest(0.25);
        let value: toml::Table = toml::from_str(&text).expect("toml");
        assert_eq!(value["guard"]["cap_score"].as_float(), Some(0.25));
        assert_eq!(value["guard"]["policy"].as_str(), Some("off"));
    }
}
