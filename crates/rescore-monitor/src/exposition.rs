//! What `/metrics` exposes: the exporter's text without the series of model versions that are no
//! longer loaded.
//!
//! A version's series (`rescore_model_info`, its `rescore_guard_flagged_total` rules, the shadow
//! comparison histograms) carry `model` and `version` labels. `metrics-exporter-prometheus` can
//! forget a series only through its idle timeout, which would also drop the counters documented
//! as exposed at 0 and reset counters whose handles are looked up per call; so an unloaded
//! version's series are left in the exporter (a label set and a value each) and filtered out of the
//! text here. A live version's series are never touched, and a version loaded again shows its
//! counters where they were (they never reset).

/// Removes from `text` (the Prometheus text format, as the exporter renders it) every sample
/// whose `model` and `version` labels name a version for which `is_loaded(model, version)` is
/// false, and the `# HELP`/`# TYPE` lines of a family left without samples. Samples without both
/// labels are kept.
pub fn retain_loaded_versions(text: &str, is_loaded: impl Fn(&str, &str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The exporter writes each family as its comment lines, its samples and a blank line.
    let mut comments: Vec<&str> = Vec::new();
    let mut family_kept = false;
    for line in text.lines() {
        if line.is_empty() {
            if family_kept {
                out.push('\n');
            }
            comments.clear();
            family_kept = false;
        } else if line.starts_with('#') {
            comments.push(line);
        } else if keeps(line, &is_loaded) {
            for c in comments.drain(..) {
                out.push_str(c);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
            family_kept = true;
        }
    }
    out
}

fn keeps(sample: &str, is_loaded: &impl Fn(&str, &str) -> bool) -> bool {
    if !sample.contains("version=\"") {
        return true;
    }
    let labels = match sample.split_once('{') {
        Some((_, rest)) => parse_labels(rest),
        None => return true,
    };
    let find = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    match (find("model"), find("version")) {
        (Some(model), Some(version)) => is_loaded(model, version),
        _ => true,
    }
}

/// The `key="value"` pairs after a sample's `{`, values unescaped (`\\`, `\"`, `\n`), up to
/// the closing `}`.
fn parse_labels(mut rest: &str) -> Vec<(&str, String)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches(',');
        let Some((key, after)) = rest.split_once("=\"") else {
            return labels;
        };
        if key.starts_with('}') {
            return labels;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, e)) => value.push(e),
                    None => break,
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let Some(end) = end else {
            return labels;
        };
        labels.push((key, value));
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP rescore_model_info 1 for each model version serving.\n\
# TYPE rescore_model_info gauge\n\
rescore_model_info{model=\"ranker\",version=\"1\",engine=\"native\"} 0\n\
rescore_model_info{model=\"ranker\",version=\"2\",engine=\"native\"} 1\n\
\n\
# TYPE rescore_shadow_kendall_tau histogram\n\
rescore_shadow_kendall_tau_bucket{model=\"ranker\",version=\"1\",le=\"0.5\"} 3\n\
rescore_shadow_kendall_tau_sum{model=\"ranker\",version=\"1\"} 1.2\n\
rescore_shadow_kendall_tau_count{model=\"ranker\",version=\"1\"} 3\n\
\n\
# TYPE rescore_requests_total counter\n\
rescore_requests_total{model=\"ranker\",variant=\"live\",outcome=\"scored\"} 7\n\
rescore_scoring_in_flight 0\n\
\n";

    #[test]
    fn drops_the_series_of_versions_not_loaded_and_their_empty_families() {
        let out = retain_loaded_versions(TEXT, |m, v| m == "ranker" && v == "2");
        assert_eq!(
            out,
            "# HELP rescore_model_info 1 for each model version serving.\n\
# TYPE rescore_model_info gauge\n\
rescore_model_info{model=\"ranker\",version=\"2\",engine=\"native\"} 1\n\
\n\
# TYPE rescore_requests_total counter\n\
rescore_requests_total{model=\"ranker\",variant=\"live\",outcome=\"scored\"} 7\n\
rescore_scoring_in_flight 0\n\
\n"
        );
    }

    #[test]
    fn keeps_everything_when_every_version_is_loaded() {
        assert_eq!(retain_loaded_versions(TEXT, |_, _| true), TEXT);
    }

    #[test]
    fn reads_escaped_label_values() {
        let text = "a{model=\"x\\\"y,version=\\\"1\\\"\",version=\"3\"} 1\n\n";
        let seen = std::sync::Mutex::new(Vec::new());
        let out = retain_loaded_versions(text, |m, v| {
            seen.lock()
                .expect("not poisoned")
                .push((m.to_string(), v.to_string()));
            false
        });
        assert_eq!(out, "");
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            vec![("x\"y,version=\"1\"".to_string(), "3".to_string())]
        );
    }
}
