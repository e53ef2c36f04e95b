//! Rows for the load-time self-check: values at and beside every decision of the model.

use super::NativeModel;

impl NativeModel {
    /// `n` deterministic rows (row-major, all model features) that exercise the model's
    /// decisions: every split threshold and its neighbouring doubles, the categories of every
    /// bitset and ids beside them, NaN, signed zeros and values LightGBM reads as zero.
    pub fn probe_rows(&self, n: usize) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        let mut features: Vec<usize> = self
            .bin_columns
            .iter()
            .map(|c| c.feature)
            .chain(self.raw_columns.iter().copied())
            .collect();
        features.sort_unstable();
        features.dedup();
        let mut candidates: Vec<Vec<f64>> =
            vec![vec![f64::NAN, 0.0, -0.0, 1e-36, -1e-36, 1.0, -1.0, 1e300]; features.len()];
        let at = |feature: usize| features.binary_search(&feature).unwrap_or(0);
        for column in &self.bin_columns {
            let values = &mut candidates[at(column.feature)];
            for &t in &column.thresholds {
                values.extend([t, t.next_up(), t.next_down()]);
            }
        }
        for split in self.splits.iter().filter(|s| s.categorical) {
            let values = &mut candidates[at(self.raw_columns[split.column as usize])];
            let (first, len) = self.cat_ranges[split.key as usize];
            for w in 0..len {
                let word = self.cat_words[(first + w) as usize];
                for bit in (0..32).filter(|b| (word >> b) & 1 == 1) {
                    let category = f64::from(w * 32 + bit);
                    values.extend([category, category + 1.0, category + 0.5]);
                }
            }
            values.extend([-1.0, -0.5, f64::from(len * 32), 1e10]);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
        let mut rows = vec![0.0; n * self.num_features];
        for (r, row) in rows.chunks_exact_mut(self.num_features).enumerate() {
            for (values, &feature) in candidates.iter().zip(&features) {
                row[feature] = match r {
                    0 => f64::NAN,
                    1 => 0.0,
                    _ => values[rng.gen_range(0..values.len())],
                };
            }
        }
        rows
    }
}
