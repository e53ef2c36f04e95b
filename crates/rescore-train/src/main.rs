//! `rescore-train`: trains a LightGBM model with the `lightgbm3` bindings (the LightGBM the
//! sidecar links) from a libsvm file, with its `.query` file of group sizes beside it as LightGBM
//! expects, and the parameters of a `rescore-pipeline` parameter file (`[train]`
//! `num_boost_round`, `[lightgbm]` passed through). Used for the LETOR parity check against
//! Python LightGBM 4.7.0 (docs/pipelines.md).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use lightgbm3::{Booster, Dataset};
use serde_json::{Map, Value};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "LambdaRank training with lightgbm3 from a libsvm file"
)]
struct Args {
    /// Training data, libsvm (`<data>.query` holds the group sizes).
    #[arg(long)]
    data: PathBuf,
    /// Parameter file: `[train] num_boost_round`, `[lightgbm]` LightGBM parameters.
    #[arg(long)]
    params: PathBuf,
    /// model.txt to write.
    #[arg(long)]
    out: PathBuf,
}

/// LightGBM parameters as JSON (lightgbm3 renders them as `key=value`; arrays as `a,b,c`).
fn lightgbm_params(text: &str) -> Result<Value> {
    let doc: toml::Table = toml::from_str(text).context("parsing the parameter file")?;
    let mut out = Map::new();
    if let Some(table) = doc.get("lightgbm") {
        let Some(table) = table.as_table() else {
            bail!("[lightgbm] must be a table");
        };
        for (k, v) in table {
            let v = match v {
                toml::Value::Array(items) => Value::String(
                    items
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                other => serde_json::to_value(other).context("parameter value")?,
            };
            out.insert(k.clone(), v);
        }
    }
    let rounds = doc
        .get("train")
        .and_then(|t| t.get("num_boost_round"))
        .and_then(toml::Value::as_integer)
        .unwrap_or(100);
    out.insert("num_iterations".into(), Value::from(rounds));
    Ok(Value::Object(out))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.params)
        .with_context(|| format!("reading {}", args.params.display()))?;
    let params = lightgbm_params(&text)?;
    let data = args.data.to_str().context("data path is not UTF-8")?;
    let dataset = Dataset::from_file(data).with_context(|| format!("loading {data}"))?;
    let booster = Booster::train(dataset, &params).context("training")?;
    let out = args.out.to_str().context("out path is not UTF-8")?;
    booster.save_file(out).context("writing the model")?;
    println!("trained {out} with {}", args.params.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_pass_through_with_rounds_and_lists() {
        let p = lightgbm_params(
            "[train]\nnum_boost_round = 7\n[lightgbm]\nobjective = \"lambdarank\"\nndcg_eval_at = [1, 3, 5]\nlearning_rate = 0.1\ndeterministic = true\n",
        )
        .expect("params");
        assert_eq!(p["num_iterations"], 7);
        assert_eq!(p["objective"], "lambdarank");
        assert_eq!(p["ndcg_eval_at"], "1,3,5");
        assert_eq!(p["learning_rate"], 0.1);
        assert_eq!(p["deterministic"], true);
    }
}
