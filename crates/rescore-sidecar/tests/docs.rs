//! The docs and the code name the same things: every flag of `rescore-sidecar --help` is in
//! docs/configuration.md's flag table and the reverse; every metric name the crates define is in
//! docs/metrics.md and the reverse; every error code in docs/api.md's table is an `ErrorCode` with
//! the HTTP status the table gives; every config file key in docs/configuration.md's tables is
//! accepted by the config parser and every key the parser accepts is documented.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::repo_root;

fn doc(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("docs").join(name)).expect("doc")
}

/// `--name` tokens at the start of a table row's first cell.
fn documented_flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            format!("--{name}")
        })
        .collect()
}

fn help_flags() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rescore-sidecar"))
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '<')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .filter(|w| w != "--help" && w != "--version")
        .collect()
}

#[test]
fn every_flag_is_documented_and_every_documented_flag_exists() {
    let documented = documented_flags(&doc("configuration.md"));
    let help = help_flags();
    assert!(
        help.len() >= 8,
        "too few flags parsed from --help: {help:?}"
    );
    let undocumented: Vec<_> = help.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&help).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "flags in --help but not in docs/configuration.md: {undocumented:?}; \
         documented but not in --help: {unknown:?}"
    );
}

fn metric_names_in(text: &str, quote: char) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pattern = format!("{quote}rescore_");
    let mut rest = text;
    while let Some(i) = rest.find(&pattern) {
        let after = &rest[i + 1..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if after[name.len()..].starts_with(quote) || quote == '`' {
            out.insert(name.trim_end_matches('_').to_string());
        }
        rest = &after[name.len()..];
    }
    out
}

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
}

#[test]
fn every_metric_is_documented_and_every_documented_metric_exists() {
    let mut code_text = String::new();
    for entry in std::fs::read_dir(repo_root().join("crates")).expect("crates") {
        let src = entry.expect("crate").path().join("src");
        if src.is_dir() {
            sources(&src, &mut code_text);
        }
    }
    let in_code = metric_names_in(&code_text, '"');
    assert!(
        in_code.len() >= 30,
        "too few metric names found: {in_code:?}"
    );
    // a histogram's derived series (`_bucket`, `_sum`, `_count`) may be named in the docs
    let in_docs: BTreeSet<String> = metric_names_in(&doc("metrics.md"), '`')
        .into_iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| in_code.contains(*b)))
                .map_or(n.clone(), str::to_string)
        })
        .collect();
    let undocumented: Vec<_> = in_code.difference(&in_docs).collect();
    let unknown: Vec<_> = in_docs.difference(&in_code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "metrics in the code but not in docs/metrics.md: {undocumented:?}; \
         in docs/metrics.md but defined nowhere: {unknown:?}"
    );
}

#[test]
fn every_documented_error_code_exists_with_its_status() {
    let text = doc("api.md");
    let mut rows = 0;
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `code` | NNN | when |
        let [_, code, status, ..] = cells.as_slice() else {
            continue;
        };
        let (Some(code), Ok(status)) = (
            code.strip_prefix('`').and_then(|c| c.strip_suffix('`')),
            status.parse::<u16>(),
        ) else {
            continue;
        };
        let parsed: rescore_api::ErrorCode = serde_json::from_value(serde_json::json!(code))
            .unwrap_or_else(|_| {
                panic!("docs/api.md names error code `{code}`, which does not exist")
            });
        assert_eq!(
            parsed.http_status(),
            status,
            "docs/api.md gives `{code}` HTTP {status}"
        );
        rows += 1;
    }
    assert!(rows >= 12, "the error table was not found ({rows} rows)");
}

/// (section, key) of every config key in docs/configuration.md's "Config file" tables: a
/// `### [section]` or `` `[section]`: `` heading, then rows whose first cell is a backticked
/// key (`cache.max_bytes` in `[item_store]` is key `max_bytes` of `[item_store.cache]`).
fn documented_config_keys(text: &str) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let start = text.find("## Config file").expect("Config file section");
    let end = text[start..]
        .find("### Example")
        .map_or(text.len(), |e| start + e);
    let mut sections = BTreeSet::from([String::new()]);
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text[start..end].lines() {
        let heading = line
            .strip_prefix("### `[")
            .or_else(|| line.strip_prefix("`["))
            .and_then(|rest| rest.split_once("]`"))
            .map(|(name, _)| name.to_string());
        if let Some(name) = heading {
            section = name;
            sections.insert(section.clone());
            continue;
        }
        if line.starts_with("### Top level") {
            section = String::new();
            continue;
        }
        let Some(key) = line
            .strip_prefix("| `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key)
        else {
            continue;
        };
        if key == "key" {
            continue;
        }
        match key.rsplit_once('.') {
            Some((sub, key)) => {
                let full = format!("{section}.{sub}");
                sections.insert(full.clone());
                keys.insert((full, key.to_string()));
            }
            None => {
                keys.insert((section.clone(), key.to_string()));
            }
        }
    }
    (sections, keys)
}

/// The keys the config file accepts in `section`, as the parser lists them when it refuses
/// an unknown one (`unknown field ..., expected one of ...`).
fn code_config_keys(section: &str, dir: &Path) -> Vec<String> {
    let file = dir.join("probe.toml");
    let table = if section.is_empty() {
        String::new()
    } else {
        format!("[{section}]\n")
    };
    std::fs::write(&file, format!("{table}not_a_config_key = 1\n")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_rescore-sidecar"))
        .args([
            "--config",
            file.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "[{section}]: {stderr}");
    // serde: "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, ..."
    let listed = stderr
        .split_once("not_a_config_key`, expected ")
        .map(|(_, rest)| rest.lines().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("[{section}] lists no keys: {stderr}"));
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let (sections, documented) = documented_config_keys(&doc("configuration.md"));
    assert!(
        documented.len() >= 40,
        "too few config keys parsed: {documented:?}"
    );
    let tmp = common::TempDir::new("config-keys");
    let mut in_code = BTreeSet::new();
    let mut pending: Vec<String> = vec![String::new()];
    let mut probed = BTreeSet::new();
    while let Some(section) = pending.pop() {
        if !probed.insert(section.clone()) {
            continue;
        }
        for key in code_config_keys(&section, tmp.path()) {
            let sub = if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            };
            // A documented section is a table of its own: probe it, do not expect a row.
            if sections.contains(&sub) {
                pending.push(sub);
            } else {
                in_code.insert((section.clone(), key));
            }
        }
    }
    let undocumented: Vec<_> = in_code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&in_code).collect();
    let unprobed: Vec<_> = sections.difference(&probed).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty() && unprobed.is_empty(),
        "config keys the code accepts but docs/configuration.md does not list (section, key): \
         {undocumented:?}; documented but refused by the code: {unknown:?}; documented \
         sections the code has not: {unprobed:?}"
    );
}
