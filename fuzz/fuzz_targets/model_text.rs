//! The native evaluator's reading of a LightGBM text model (header, tree blocks, compilation):
//! any text is refused with an error or becomes a model that scores rows of zeros, missing
//! values and extremes to finite-or-NaN scores without panicking, raw and binned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rescore_model::{ModelHeader, NativeModel};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(header) = ModelHeader::parse(text) else {
        return;
    };
    let Ok(model) = NativeModel::from_text(text, &header) else {
        return;
    };
    let width = model.num_features();
    let mut rows = vec![0.0; width * 4];
    for (i, x) in rows.iter_mut().enumerate() {
        *x = match i / width.max(1) {
            0 => 0.0,
            1 => f64::NAN,
            2 => 1e300,
            _ => -1.5,
        };
    }
    let scores = model.predict(&rows);
    assert_eq!(scores.len(), if width == 0 { 0 } else { 4 });
    if let Some(columns) = model.bin_features() {
        let mut bins = Vec::with_capacity(columns.len() * 4);
        for r in 0..4 {
            for (c, feature) in columns.iter().enumerate() {
                bins.push(model.bin(c, rows[r * width + feature]));
            }
        }
        let binned = model.predict_binned(&bins, 4);
        assert_eq!(binned.len(), 4);
    }
});
