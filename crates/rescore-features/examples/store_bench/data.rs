//! The bench's synthetic items, as JSON Lines and as Parquet (same seed, same values).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};

pub const FEATURES: usize = 30;

/// The items of [`generate`] (same seed, same draws) as Parquet.
pub fn generate_parquet(path: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
    const GROUP: usize = 131_072;
    let mut schema = String::from("message items { REQUIRED BYTE_ARRAY id (STRING);");
    for f in 0..FEATURES {
        let ty = if f % 3 == 0 { "INT32" } else { "DOUBLE" };
        schema.push_str(&format!(" REQUIRED {ty} f{f};"));
    }
    schema.push('}');
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema)?);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::file::writer::SerializedFileWriter::new(
        std::fs::File::create(path)?,
        schema,
        Arc::new(props),
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut start = 0;
    while start < n {
        let end = (start + GROUP).min(n);
        let ids: Vec<ByteArray> = (start..end)
            .map(|i| ByteArray::from(format!("item{i}").as_str()))
            .collect();
        let mut columns: Vec<Vec<f64>> = (0..FEATURES)
            .map(|_| Vec::with_capacity(end - start))
            .collect();
        for _ in start..end {
            for (f, column) in columns.iter_mut().enumerate() {
                column.push(value(&mut rng, f));
            }
        }
        let mut group = writer.next_row_group()?;
        let mut c = group.next_column()?.ok_or("id column")?;
        c.typed::<ByteArrayType>().write_batch(&ids, None, None)?;
        c.close()?;
        for (f, column) in columns.iter().enumerate() {
            let mut c = group.next_column()?.ok_or("feature column")?;
            if f % 3 == 0 {
                let ints: Vec<i32> = column.iter().map(|v| *v as i32).collect();
                c.typed::<Int32Type>().write_batch(&ints, None, None)?;
            } else {
                c.typed::<DoubleType>().write_batch(column, None, None)?;
            }
            c.close()?;
        }
        group.close()?;
        start = end;
    }
    writer.close()?;
    Ok(())
}

pub fn value(rng: &mut rand_chacha::ChaCha8Rng, f: usize) -> f64 {
    match f % 3 {
        0 => rng.gen_range(0..5000) as f64,
        1 => (rng.gen_range(0.0..10_000.0f64) * 100.0).round() / 100.0,
        _ => rng.gen::<f64>() * 1e3 - 500.0,
    }
}

/// Synthetic items: 10 integer ids (categories, counts), 10 prices with cents, 10 arbitrary
/// doubles (full 17-digit precision, so exactness is tested on values f32 cannot hold).
pub fn generate(path: &Path, n: usize) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut line = String::with_capacity(1024);
    for i in 0..n {
        line.clear();
        line.push_str(&format!("{{\"id\":\"item{i}\",\"features\":{{"));
        for f in 0..FEATURES {
            if f > 0 {
                line.push(',');
            }
            let value = value(&mut rng, f);
            line.push_str(&format!("\"f{f}\":{value:?}"));
        }
        line.push_str("}}\n");
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}
