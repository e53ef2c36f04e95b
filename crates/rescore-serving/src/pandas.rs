//! LightGBM's `pandas_categorical` line: a model trained from a pandas DataFrame with
//! `category` columns ends with `pandas_categorical:[["red","green",...], ...]`, the
//! categories of each such column in the DataFrame's order. `predict(DataFrame)` turns a value
//! into its position in that list (unlisted: missing); the sidecar maps request strings the same
//! way (`FeatureSpec::with_model_categories`, docs/api.md).

use std::collections::BTreeMap;

/// The category list of each pandas categorical feature, by feature name; empty when the model
/// has none (`pandas_categorical:null`, or no such line). The lists belong to the model's
/// categorical features (`[categorical_feature: ...]`) in order, as LightGBM writes them for
/// a DataFrame's `category` columns; a model whose counts differ is refused, since which list
/// belongs to which feature could not be told.
pub(crate) fn model_categories(
    model_text: &str,
    feature_names: &[String],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let Some(line) = model_text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("pandas_categorical:"))
    else {
        return Ok(BTreeMap::new());
    };
    let lists: Option<Vec<Vec<serde_json::Value>>> = serde_json::from_str(line.trim())
        .map_err(|e| format!("pandas_categorical: not a JSON list of lists ({e})"))?;
    let Some(lists) = lists else {
        return Ok(BTreeMap::new());
    };
    let features = rescore_monitor::dataset::categorical_features(model_text);
    if lists.len() != features.len() {
        return Err(format!(
            "pandas_categorical has {} category lists, but the model declares {} categorical features ({:?}): which list belongs to which feature cannot be told",
            lists.len(),
            features.len(),
            features
        ));
    }
    let mut out = BTreeMap::new();
    for (list, &index) in lists.iter().zip(&features) {
        let name = feature_names.get(index).ok_or_else(|| {
            format!("categorical feature index {index} is beyond the model's features")
        })?;
        // Strings as they are; other categories (pandas allows numbers) by their JSON text,
        // the string a request sends for them.
        let categories: Vec<String> = list
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = categories.iter().find(|c| !seen.insert(*c)) {
            return Err(format!(
                "pandas_categorical: `{dup}` appears twice in the categories of `{name}`"
            ));
        }
        out.insert(name.clone(), categories);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["x0", "color", "x1", "size"].map(String::from).to_vec()
    }

    #[test]
    fn lists_belong_to_the_categorical_features_in_order() {
        let text = "tree\n[categorical_feature: 1,3]\nend of parameters\n\npandas_categorical:[[\"red\",\"green\",\"blue\"],[3,1]]\n";
        let got = model_categories(text, &names()).expect("parsed");
        assert_eq!(got["color"], ["red", "green", "blue"]);
        assert_eq!(got["size"], ["3", "1"]);
        assert!(
            model_categories("tree\npandas_categorical:null\n", &names())
                .expect("null")
                .is_empty()
        );
        assert!(model_categories("tree\n", &names())
            .expect("none")
            .is_empty());
        let err = model_categories(
            "[categorical_feature: 1]\npandas_categorical:[[\"a\"],[\"b\"]]\n",
            &names(),
        )
        .expect_err("two lists, one feature");
        assert!(err.contains("2 category lists"), "{err}");
        let err = model_categories("pandas_categorical:[[\"a\"\n", &names()).expect_err("json");
        assert!(err.contains("not a JSON list"), "{err}");
    }
}
