//! Writes the Parquet seed of `corpus/items_parquet`: three items with a string id, integer,
//! optional and double columns (the shapes the importer reads), Snappy-compressed.
//! `cargo run --bin write_parquet_seed -- corpus/items_parquet/seed.parquet`

use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

fn main() {
    let path = std::env::args().nth(1).expect("output path");
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message items {
                REQUIRED BYTE_ARRAY id (STRING);
                REQUIRED INT32 category;
                OPTIONAL INT64 brand;
                REQUIRED DOUBLE price;
            }",
        )
        .expect("schema"),
    );
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(&path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(props)).expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    let mut c = group.next_column().expect("next").expect("id");
    let ids: Vec<ByteArray> = ["i0", "i1", "i2"].into_iter().map(ByteArray::from).collect();
    c.typed::<ByteArrayType>().write_batch(&ids, None, None).expect("ids");
    c.close().expect("close");
    let mut c = group.next_column().expect("next").expect("category");
    c.typed::<Int32Type>().write_batch(&[12, 7, 12], None, None).expect("category");
    c.close().expect("close");
    let mut c = group.next_column().expect("next").expect("brand");
    c.typed::<Int64Type>()
        .write_batch(&[41, 3], Some(&[1, 0, 1]), None)
        .expect("brand");
    c.close().expect("close");
    let mut c = group.next_column().expect("next").expect("price");
    c.typed::<DoubleType>()
        .write_batch(&[19.5, 250.0, 3.25], None, None)
        .expect("price");
    c.close().expect("close");
    group.close().expect("row group");
    writer.close().expect("file");
}
