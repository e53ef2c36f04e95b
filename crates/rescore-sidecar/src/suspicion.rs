//! `rescore-sidecar items suspicion`: the item suspicion columns of a model's manifest, fitted
//! on a JSON Lines snapshot and written into a copy of it (ADR 0011). Off the request path and
//! outside every item store: the columns are data like any other, whichever backend serves them.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use rescore_features::suspicion::{ItemValues, SuspicionModel, RULES_COLUMN, SUSPICION_COLUMN};
use rescore_serving::Manifest;
use serde_json::{Map, Value};

use crate::config::SuspicionArgs;

/// Annotates the snapshot; the summary names how many items broke each rule.
pub fn run(args: &SuspicionArgs) -> anyhow::Result<Value> {
    let manifest = Manifest::read(&args.manifest).map_err(anyhow::Error::msg)?;
    let config = manifest.suspicion.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no [suspicion] section (docs/monitoring.md)",
            args.manifest.display()
        )
    })?;
    let seller = rescore_features::seller_controlled_keys(&manifest.features)?;
    let lines = read_lines(&args.snapshot)?;
    let items: Vec<(String, ItemValues)> = lines
        .iter()
        .map(|(id, features)| {
            let values = features
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect();
            (id.clone(), values)
        })
        .collect();
    let scores = SuspicionModel::annotate(&config, &seller, &items);
    let out = std::fs::File::create(&args.output)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.output.display()))?;
    let mut out = BufWriter::new(out);
    let mut broken = [0usize; 2];
    let mut over_99 = 0usize;
    for ((id, mut features), s) in lines.into_iter().zip(&scores) {
        features.insert(SUSPICION_COLUMN.into(), Value::from(s.score));
        features.insert(RULES_COLUMN.into(), Value::from(s.rules));
        for (i, rule) in rescore_features::suspicion::Rule::ALL.iter().enumerate() {
            broken[i] += usize::from(s.rules & rule.bit() != 0);
        }
        over_99 += usize::from(s.score >= 0.99);
        let line = serde_json::json!({ "id": id, "features": features });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(serde_json::json!({
        "output": args.output, "items": scores.len(), "seller_controlled": seller,
        "suspicion_at_least_0_99": over_99,
        "popularity_vs_age": broken[0], "price_below_category": broken[1],
    }))
}

type Line = (String, Map<String, Value>);

fn read_lines(path: &Path) -> anyhow::Result<Vec<Line>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut lines = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| anyhow::anyhow!("{} line {}: {what}", path.display(), n + 1);
        let mut value: Value = serde_json::from_str(&line).map_err(|e| bad(&e.to_string()))?;
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`id` must be a string"))?
            .to_string();
        let features = match value.get_mut("features").map(Value::take) {
            Some(Value::Object(map)) => map,
            _ => return Err(bad("`features` must be an object")),
        };
        lines.push((id, features));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotates_a_snapshot_and_names_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("manifest.toml");
        std::fs::write(
            &manifest,
            "[features.price]\nseller_controlled = true\n\n[suspicion]\ncategory = \"cat\"\nmin_category_items = 5\n\n[suspicion.price_below_category]\nprice = \"price\"\n",
        )
        .expect("manifest");
        let snapshot = dir.path().join("items.jsonl");
        let mut text = String::new();
        for i in 0..40 {
            let price = if i == 7 {
                0.5
            } else {
                20.0 + f64::from(i % 10)
            };
            text.push_str(&format!(
                "{{\"id\":\"i{i}\",\"features\":{{\"cat\":1,\"price\":{price}}}}}\n"
            ));
        }
        std::fs::write(&snapshot, &text).expect("snapshot");
        let output = dir.path().join("out.jsonl");
        let args = SuspicionArgs {
            manifest: manifest.clone(),
            snapshot: snapshot.clone(),
            output: output.clone(),
        };
        let summary = run(&args).expect("annotated");
        assert_eq!(summary["items"], 40);
        assert_eq!(summary["price_below_category"], 1);
        let written = std::fs::read_to_string(&output).expect("output");
        let bait: Value =
            serde_json::from_str(written.lines().nth(7).expect("line 8")).expect("json");
        assert_eq!(bait["features"]["suspicion"], 1.0);
        assert_eq!(bait["features"]["suspicion_rules"], 2);
        // The same snapshot annotates to the same bytes.
        run(&args).expect("again");
        assert_eq!(std::fs::read_to_string(&output).expect("output"), written);

        std::fs::write(&snapshot, "{\"id\":1,\"features\":{}}\n").expect("bad snapshot");
        let err = run(&args).expect_err("bad id").to_string();
        assert!(err.contains("line 1") && err.contains("`id`"), "{err}");
        std::fs::write(&manifest, "[features.price]\nseller_controlled = true\n").expect("m");
        let err = run(&args).expect_err("no section").to_string();
        assert!(err.contains("[suspicion]"), "{err}");
    }
}
