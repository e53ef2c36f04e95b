//! Ranking metrics: NDCG@k and the ordering rules shared by the offline and replay figures.

/// Positions of `scores` best first; equal scores keep their original (baseline) order.
pub fn order_by_scores(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // A stable sort on descending score: ties stay in original rank order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// DCG@k of grades listed in ranked order: sum of (2^rel - 1) / log2(rank + 1), ranks from 1.
pub fn dcg_at(ranked_labels: impl IntoIterator<Item = u8>, k: usize) -> f64 {
    ranked_labels
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, rel)| (2f64.powi(i32::from(rel)) - 1.0) / ((i + 2) as f64).log2())
        .sum()
}

/// NDCG@k of the candidate list `labels` ranked by `order` (positions into `labels`). The ideal
/// DCG is that of the candidate list's own labels sorted best first. `None` when no candidate
/// is relevant (ideal DCG 0): such queries cannot tell rankings apart.
pub fn ndcg_at(labels: &[u8], order: &[usize], k: usize) -> Option<f64> {
    let mut ideal = labels.to_vec();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg = dcg_at(ideal, k);
    (idcg > 0.0).then(|| dcg_at(order.iter().map(|&i| labels[i]), k) / idcg)
}

/// Mean NDCG@k over queries given as (labels, scores) pairs. Returns the mean over queries with
/// at least one relevant candidate and how many queries were skipped for having none.
pub fn mean_ndcg<'a>(
    queries: impl IntoIterator<Item = (&'a [u8], &'a [f64])>,
    k: usize,
) -> (f64, usize) {
    let (mut sum, mut n, mut skipped) = (0.0, 0usize, 0usize);
    for (labels, scores) in queries {
        match ndcg_at(labels, &order_by_scores(scores), k) {
            Some(v) => {
                sum += v;
                n += 1;
            }
            None => skipped += 1,
        }
    }
    (if n == 0 { 0.0 } else { sum / n as f64 }, skipped)
}

/// Nearest-rank percentile (`p` in 0..=100) of ascending `sorted` values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ties_keep_original_rank() {
        assert_eq!(
            order_by_scores(&[1.0, 3.0, 3.0, 2.0, 3.0]),
            vec![1, 2, 4, 3, 0]
        );
        assert_eq!(order_by_scores(&[0.0; 4]), vec![0, 1, 2, 3]);
    }

    #[test]
    fn ndcg_hand_computed() {
        // Ranked labels [3, 2, 0, 1]: DCG = 7/1 + 3/log2(3) + 0 + 1/log2(5).
        let dcg = 7.0 + 3.0 / 3f64.log2() + 1.0 / 5f64.log2();
        assert!(close(dcg_at([3, 2, 0, 1], 10), dcg));
        // Ideal [3, 2, 1, 0]: 7 + 3/log2(3) + 1/2.
        let idcg = 7.0 + 3.0 / 3f64.log2() + 0.5;
        let labels = [0, 1, 2, 3];
        let ndcg = ndcg_at(&labels, &[3, 2, 0, 1], 10).expect("relevant items");
        assert!(close(ndcg, dcg / idcg));
        // The ideal order scores 1, the reverse of it less.
        assert_eq!(ndcg_at(&labels, &[3, 2, 1, 0], 10), Some(1.0));
        let worst = ndcg_at(&labels, &[0, 1, 2, 3], 10).expect("relevant items");
        assert!(close(
            worst,
            (1.0 / 3f64.log2() + 3.0 / 2.0 + 7.0 / 5f64.log2()) / idcg
        ));
    }

    #[test]
    fn ndcg_cut_off_and_no_relevant() {
        // Only the first k ranks count, for the ranking and for the ideal.
        let labels = [1, 0, 4];
        let at1 = ndcg_at(&labels, &[0, 1, 2], 1).expect("relevant");
        assert!(close(at1, 1.0 / 15.0));
        assert_eq!(ndcg_at(&[0, 0, 0], &[0, 1, 2], 10), None);
        let (mean, skipped) = mean_ndcg(
            [
                (&[0u8, 2][..], &[0.5, 0.9][..]),
                (&[0u8, 0][..], &[0.5, 0.9][..]),
                (&[2u8, 0][..], &[0.5, 0.9][..]),
            ],
            10,
        );
        assert_eq!(skipped, 1);
        assert!(close(mean, (1.0 + 1.0 / 3f64.log2()) / 2.0));
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
