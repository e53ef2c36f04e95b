//! A small BM25 index over item titles: the stand-in for the Elasticsearch first pass.

use std::collections::HashMap;

/// Term-frequency saturation (Lucene/Elasticsearch default).
const K1: f64 = 1.2;
/// Length normalisation (Lucene/Elasticsearch default).
const B: f64 = 0.75;

#[derive(Debug)]
pub struct Bm25Index {
    /// term -> (doc, term frequency in doc), docs ascending.
    postings: HashMap<String, Vec<(usize, u32)>>,
    doc_len: Vec<f64>,
    avg_len: f64,
}

impl Bm25Index {
    /// Indexes `docs`, each a list of tokens; a doc's position is its id.
    pub fn new<S: AsRef<str>>(docs: &[Vec<S>]) -> Self {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (doc, tokens) in docs.iter().enumerate() {
            doc_len.push(tokens.len() as f64);
            for token in tokens {
                let list = postings.entry(token.as_ref().to_owned()).or_default();
                match list.last_mut() {
                    Some((d, tf)) if *d == doc => *tf += 1,
                    _ => list.push((doc, 1)),
                }
            }
        }
        let avg_len = if docs.is_empty() {
            0.0
        } else {
            doc_len.iter().sum::<f64>() / docs.len() as f64
        };
        Bm25Index {
            postings,
            doc_len,
            avg_len,
        }
    }

    /// Lucene's always-positive idf: ln(1 + (N - df + 0.5) / (df + 0.5)).
    fn idf(&self, df: usize) -> f64 {
        let n = self.doc_len.len() as f64;
        let df = df as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// BM25 scores of every doc matching at least one query term, best first; ties by doc id
    /// so that the order is deterministic. Repeated query terms count once.
    pub fn search(&self, query_terms: &[&str]) -> Vec<(usize, f64)> {
        let mut seen: Vec<&str> = Vec::new();
        let mut scores: HashMap<usize, f64> = HashMap::new();
        for &term in query_terms {
            if seen.contains(&term) {
                continue;
            }
            seen.push(term);
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let idf = self.idf(list.len());
            for &(doc, tf) in list {
                let tf = f64::from(tf);
                let norm = K1 * (1.0 - B + B * self.doc_len[doc] / self.avg_len);
                *scores.entry(doc).or_insert(0.0) += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Bm25Index {
        Bm25Index::new(&[
            vec!["red", "wireless", "mouse"],
            vec!["red", "keyboard"],
            vec!["mouse", "cage", "large", "wooden", "hutch", "with", "wheel"],
            vec!["blue", "keyboard"],
        ])
    }

    #[test]
    fn doc_with_the_term_outranks_docs_without() {
        let hits = index().search(&["mouse"]);
        let docs: Vec<usize> = hits.iter().map(|h| h.0).collect();
        // Only docs 0 and 2 contain "mouse"; the shorter title wins (length normalisation).
        assert_eq!(docs, vec![0, 2]);
        assert!(hits[0].1 > hits[1].1 && hits[1].1 > 0.0);
    }

    #[test]
    fn rarer_terms_weigh_more_and_terms_add_up() {
        let idx = index();
        // "wireless" (df 1) is rarer than "red" (df 2), so doc 0 wins "red wireless".
        let hits = idx.search(&["red", "wireless"]);
        assert_eq!(hits[0].0, 0);
        assert_eq!(hits[1].0, 1);
        let red_only = idx.search(&["red"]);
        let doc0_red = red_only.iter().find(|h| h.0 == 0).map(|h| h.1);
        assert!(Some(hits[0].1) > doc0_red);
        // A repeated query term does not count twice; unknown terms match nothing.
        assert_eq!(idx.search(&["red", "red"]), red_only);
        assert!(idx.search(&["sofa"]).is_empty());
    }

    #[test]
    fn hand_computed_score() {
        // N = 4, df("cage") = 1, doc 2 has 7 tokens, avg length = 14 / 4 = 3.5.
        let hits = index().search(&["cage"]);
        let idf = (1.0f64 + (4.0 - 1.0 + 0.5) / 1.5).ln();
        let norm = 1.2 * (1.0 - 0.75 + 0.75 * 7.0 / 3.5);
        let expected = idf * 2.2 / (1.0 + norm);
        assert_eq!(hits.len(), 1);
        assert!((hits[0].1 - expected).abs() < 1e-12);
    }
}
