//! The parts of a LightGBM text model (`save_model` output) the sidecar needs before scoring:
//! feature names, class count, objective. The trees themselves are read by the engines.

use crate::ModelError;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelHeader {
    pub format_version: String,
    pub num_class: usize,
    pub num_tree_per_iteration: usize,
    /// Number of features the model expects (`max_feature_idx + 1`).
    pub num_features: usize,
    pub feature_names: Vec<String>,
    /// The objective line as saved, e.g. `binary sigmoid:1` or `lambdarank`.
    pub objective: Option<String>,
    pub average_output: bool,
    pub num_trees: usize,
}

impl ModelHeader {
    /// Parses the header of a LightGBM text model; `Tree=` blocks are only counted.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let mut lines = text.lines().map(str::trim_end);
        if lines.next() != Some("tree") {
            return Err(ModelError::Format(
                "not a LightGBM text model: the first line must be `tree`".into(),
            ));
        }
        let mut format_version = None;
        let mut num_class = None;
        let mut num_tree_per_iteration = None;
        let mut max_feature_idx = None;
        let mut feature_names = None;
        let mut objective = None;
        let mut average_output = false;
        let mut num_trees = 0usize;
        let mut in_header = true;
        for line in lines {
            if line.starts_with("Tree=") {
                in_header = false;
                num_trees += 1;
                continue;
            }
            if line == "end of trees" {
                break;
            }
            if !in_header {
                continue;
            }
            if line == "average_output" {
                average_output = true;
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "version" => format_version = Some(value.to_string()),
                "num_class" => num_class = Some(parse_usize(key, value)?),
                "num_tree_per_iteration" => num_tree_per_iteration = Some(parse_usize(key, value)?),
                "max_feature_idx" => max_feature_idx = Some(parse_usize(key, value)?),
                "objective" => objective = Some(value.to_string()),
                "feature_names" => {
                    feature_names = Some(value.split(' ').map(str::to_string).collect::<Vec<_>>())
                }
                _ => {}
            }
        }
        let missing = |what: &str| ModelError::Format(format!("model header has no `{what}=`"));
        let num_features = max_feature_idx.ok_or_else(|| missing("max_feature_idx"))? + 1;
        let feature_names = feature_names.ok_or_else(|| missing("feature_names"))?;
        if feature_names.len() != num_features {
            return Err(ModelError::Format(format!(
                "model header lists {} feature names but max_feature_idx implies {num_features}",
                feature_names.len()
            )));
        }
        if num_trees == 0 {
            return Err(ModelError::Format("model has no trees".into()));
        }
        Ok(ModelHeader {
            format_version: format_version.ok_or_else(|| missing("version"))?,
            num_class: num_class.ok_or_else(|| missing("num_class"))?,
            num_tree_per_iteration: num_tree_per_iteration.unwrap_or(1),
            num_features,
            feature_names,
            objective,
            average_output,
            num_trees,
        })
    }
}

fn parse_usize(key: &str, value: &str) -> Result<usize, ModelError> {
    value
        .parse()
        .map_err(|_| ModelError::Format(format!("`{key}={value}` is not a non-negative integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
        max_feature_idx=1\nobjective=binary sigmoid:1\nfeature_names=a b\n\
        feature_infos=[0:1] [0:1]\ntree_sizes=10\n\nTree=0\nnum_leaves=1\nnum_cat=0\n\
        leaf_value=0.5\n\nend of trees\n";

    #[test]
    fn parses_header_fields() {
        let h = ModelHeader::parse(SMALL).expect("valid header");
        assert_eq!(h.feature_names, ["a", "b"]);
        assert_eq!(h.num_features, 2);
        assert_eq!(h.num_class, 1);
        assert_eq!(h.objective.as_deref(), Some("binary sigmoid:1"));
        assert_eq!(h.num_trees, 1);
        assert!(!h.average_output);
    }

    #[test]
    fn rejects_what_is_not_a_model() {
        assert!(ModelHeader::parse("").is_err());
        assert!(ModelHeader::parse("{\"json\": true}").is_err());
        let no_names = SMALL.replace("feature_names=a b\n", "");
        assert!(ModelHeader::parse(&no_names).is_err());
        let mismatch = SMALL.replace("max_feature_idx=1", "max_feature_idx=4");
        assert!(ModelHeader::parse(&mismatch).is_err());
        let no_trees = SMALL.replace("Tree=0", "Tree0");
        assert!(ModelHeader::parse(&no_trees).is_err());
    }
}
