//! Parquet item snapshots: one row per item, an `id` string column, an optional `version`
//! integer column, an optional `routing` string column (the document's `_routing`, for
//! shard-filtered imports), every other column a numeric feature named by the column
//! (docs/feature-store.md#parquet-snapshots).
//!
//! The schema is checked as a whole before any row is read. Rows are then read row group by
//! row group, [`BATCH`] rows at a time from every column in step, and fed to the same
//! [`SnapshotBuilder`] as JSON Lines, features in name order (as a parsed JSON object is), so
//! the same data gives the same store file. Memory is bounded by one decompressed page per
//! column plus a batch, whatever the file or row group size; a page may not declare more than
//! its column chunk holds nor more than 256 MiB (`parquet_pages`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{
    BoolType, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::reader::{FileReader, Length, SerializedFileReader};
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::ColumnDescriptor;

use crate::embedded::{Built, SnapshotBuilder, StoreError};
use crate::parquet_pages::{CheckedChunk, CheckedPages};

/// Rows read from every column at a time.
const BATCH: usize = 4096;

fn err(problem: impl Into<String>) -> StoreError {
    StoreError::Parquet {
        problem: problem.into(),
    }
}

/// How a feature (or `version`) column's values become numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

#[derive(Debug)]
struct Column {
    /// Leaf index in the file schema.
    index: usize,
    name: String,
    kind: Kind,
    max_def: i16,
}

/// The snapshot's columns, checked.
#[derive(Debug)]
struct Layout {
    id: Column,
    version: Option<Column>,
    /// A string `routing` column (a numeric one is a feature, as before routing existed).
    routing: Option<Column>,
    /// Sorted by name: the order JSON Lines interns a line's feature names in.
    features: Vec<Column>,
}

/// The type a column has, as people know it (for messages).
fn describe(column: &ColumnDescriptor) -> String {
    match column.logical_type_ref() {
        Some(logical) => format!("{} ({logical:?})", column.physical_type()),
        None if column.converted_type() != ConvertedType::NONE => {
            format!("{} ({})", column.physical_type(), column.converted_type())
        }
        None => column.physical_type().to_string(),
    }
}

/// The numeric kind of a column, or `None` if it is not a supported numeric type.
fn numeric_kind(column: &ColumnDescriptor) -> Option<Kind> {
    let unsigned = match (column.logical_type_ref(), column.converted_type()) {
        (Some(LogicalType::Integer(int)), _) => !int.is_signed,
        (Some(_), _) => return None,
        (None, ConvertedType::NONE)
        | (None, ConvertedType::INT_8)
        | (None, ConvertedType::INT_16)
        | (None, ConvertedType::INT_32)
        | (None, ConvertedType::INT_64) => false,
        (None, ConvertedType::UINT_8)
        | (None, ConvertedType::UINT_16)
        | (None, ConvertedType::UINT_32)
        | (None, ConvertedType::UINT_64) => true,
        (None, _) => return None,
    };
    let integer_annotation =
        column.logical_type_ref().is_some() || column.converted_type() != ConvertedType::NONE;
    match column.physical_type() {
        PhysicalType::INT32 if unsigned => Some(Kind::U32),
        PhysicalType::INT32 => Some(Kind::I32),
        PhysicalType::INT64 if unsigned => Some(Kind::U64),
        PhysicalType::INT64 => Some(Kind::I64),
        PhysicalType::FLOAT if !integer_annotation => Some(Kind::F32),
        PhysicalType::DOUBLE if !integer_annotation => Some(Kind::F64),
        PhysicalType::BOOLEAN if !integer_annotation => Some(Kind::Bool),
        _ => None,
    }
}

fn is_string(column: &ColumnDescriptor) -> bool {
    column.physical_type() == PhysicalType::BYTE_ARRAY
        && match column.logical_type_ref() {
            Some(logical) => matches!(logical, LogicalType::String),
            None => matches!(
                column.converted_type(),
                ConvertedType::UTF8 | ConvertedType::NONE
            ),
        }
}

const SUPPORTED: &str = "features must be int8..int64, uint8..uint64, float, double or boolean";

/// The checked layout; `filters_shards` refuses a numeric `routing` column, which would
/// otherwise be a feature and leave the items routed by their ids.
fn layout(reader: &SerializedFileReader<File>, filters_shards: bool) -> Result<Layout, StoreError> {
    let schema = reader.metadata().file_metadata().schema_descr();
    // Nested columns (groups, lists, maps) first: their leaves are not features.
    for field in schema.root_schema().get_fields() {
        if field.is_group() {
            return Err(err(format!(
                "column `{}` is nested (a group, list or map); {SUPPORTED}, one flat column each",
                field.name()
            )));
        }
    }
    if !schema.columns().iter().any(|c| c.name() == "id") {
        let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
        return Err(err(format!(
            "no `id` column (columns: {})",
            names.join(", ")
        )));
    }
    let mut id = None;
    let mut version = None;
    let mut routing = None;
    let mut features = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, descriptor) in schema.columns().iter().enumerate() {
        let name = descriptor.name().to_string();
        if !seen.insert(name.clone()) {
            return Err(err(format!("column `{name}` appears twice")));
        }
        if descriptor.max_rep_level() > 0 {
            return Err(err(format!(
                "column `{name}` is repeated; {SUPPORTED}, one value per row"
            )));
        }
        let max_def = descriptor.max_def_level();
        match name.as_str() {
            "id" => {
                if !is_string(descriptor) {
                    return Err(err(format!(
                        "column `id` has type {}; it must be a UTF-8 string (cast integer ids to strings: the ids of hits are strings)",
                        describe(descriptor)
                    )));
                }
                id = Some(Column {
                    index,
                    name,
                    kind: Kind::I64,
                    max_def,
                });
            }
            "version" => {
                let kind = numeric_kind(descriptor)
                    .filter(|k| matches!(k, Kind::I32 | Kind::U32 | Kind::I64 | Kind::U64))
                    .ok_or_else(|| {
                        err(format!(
                            "column `version` has type {}; it must be an integer",
                            describe(descriptor)
                        ))
                    })?;
                version = Some(Column {
                    index,
                    name,
                    kind,
                    max_def,
                });
            }
            "routing" if is_string(descriptor) => {
                routing = Some(Column {
                    index,
                    name,
                    kind: Kind::I64,
                    max_def,
                });
            }
            "routing" if filters_shards => {
                return Err(err(format!(
                    "column `routing` has type {}; as the documents' routing key it must be a UTF-8 string (the engine routes by the string: cast it), or rename the feature",
                    describe(descriptor)
                )));
            }
            _ => {
                let kind = numeric_kind(descriptor).ok_or_else(|| {
                    err(format!(
                        "column `{name}` has type {}, not supported: only `id` is a string; {SUPPORTED}",
                        describe(descriptor)
                    ))
                })?;
                features.push(Column {
                    index,
                    name,
                    kind,
                    max_def,
                });
            }
        }
    }
    let id = id.ok_or_else(|| err("no `id` column"))?;
    features.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Layout {
        id,
        version,
        routing,
        features,
    })
}

/// Refuses column chunks whose offset or size in the footer is negative: the parquet crate
/// asserts on them when the chunk is opened (found by the `items_parquet` fuzz target), and a
/// damaged file must be an error naming the problem, not a crash.
fn check_column_chunks(
    reader: &SerializedFileReader<File>,
    file_len: u64,
) -> Result<(), StoreError> {
    for (group, row_group) in reader.metadata().row_groups().iter().enumerate() {
        for column in row_group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let (Ok(offset), Ok(size)) = (
                u64::try_from(start),
                u64::try_from(column.compressed_size()),
            ) else {
                return Err(err(format!(
                    "row group {group}, column `{}`: negative offset ({start}) or size ({}) in the file's metadata (a damaged file)",
                    column.column_path(),
                    column.compressed_size()
                )));
            };
            // A page is read whole into memory: its size is bounded by its chunk's, and so by
            // the file's once the chunk is known to lie within the file.
            if offset.saturating_add(size) > file_len {
                return Err(err(format!(
                    "row group {group}, column `{}`: the file's metadata places it at bytes {offset}..{} of a {file_len}-byte file (a damaged or truncated file)",
                    column.column_path(),
                    offset.saturating_add(size)
                )));
            }
        }
    }
    Ok(())
}

/// Builds the store file of `builder` from the Parquet snapshot.
///
/// The parquet crate asserts on some malformed files (two found by the `items_parquet` fuzz
/// target: a negative chunk offset, a dictionary-encoded page without a dictionary), so its
/// panics are caught here: a damaged file is an error naming it, never a crash of `items
/// import` or of a sidecar building its store. The scratch file is removed as on any error.
pub(crate) fn build(
    snapshot: &Path,
    builder: SnapshotBuilder,
    fingerprint: &str,
    built_by: &str,
) -> Result<Built, StoreError> {
    let read =
        std::panic::AssertUnwindSafe(|| read_into_store(snapshot, builder, fingerprint, built_by));
    std::panic::catch_unwind(read).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(err(format!(
            "the Parquet reader failed on this file ({what}): a damaged or unsupported file"
        )))
    })
}

fn read_into_store(
    snapshot: &Path,
    mut builder: SnapshotBuilder,
    fingerprint: &str,
    built_by: &str,
) -> Result<Built, StoreError> {
    let file = File::open(snapshot).map_err(|source| StoreError::Io {
        path: snapshot.display().to_string(),
        source,
    })?;
    // The page readers read through their own handle, which checks each page header first.
    let pages_file = Arc::new(file.try_clone().map_err(|source| StoreError::Io {
        path: snapshot.display().to_string(),
        source,
    })?);
    let reader = SerializedFileReader::new(file)
        .map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
    check_column_chunks(&reader, Length::len(&*pages_file))?;
    let layout = layout(&reader, builder.filters_shards())?;
    let mut row: u64 = 0;
    let mut ids: Vec<Option<String>> = Vec::with_capacity(BATCH);
    let mut routings: Vec<Option<String>> = Vec::with_capacity(BATCH);
    let mut versions: Vec<Option<i128>> = Vec::with_capacity(BATCH);
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(BATCH); layout.features.len()];
    let mut scratch = Scratch::default();
    for group in 0..reader.num_row_groups() {
        let row_group = reader
            .get_row_group(group)
            .map_err(|e| err(format!("row group {group}: {e}")))?;
        let rows = usize::try_from(row_group.metadata().num_rows())
            .map_err(|_| err(format!("row group {group}: negative row count")))?;
        let open = |column: &Column| -> Result<ColumnReader, StoreError> {
            let chunk = row_group.metadata().column(column.index);
            let checked = Arc::new(CheckedChunk::new(pages_file.clone(), chunk));
            let pages = SerializedPageReader::new(checked, chunk, rows, None)
                .map_err(|e| err(format!("column `{}`, row group {group}: {e}", column.name)))?;
            let descr = chunk.column_descr_ptr();
            let pages = Box::new(CheckedPages::new(Box::new(pages), &descr));
            Ok(parquet::column::reader::get_column_reader(descr, pages))
        };
        let mut id_reader = ByteArrayType::get_column_reader(open(&layout.id)?)
            .ok_or_else(|| err("column `id`: unexpected reader type"))?;
        let mut routing_reader = match &layout.routing {
            Some(c) => Some((
                c,
                ByteArrayType::get_column_reader(open(c)?)
                    .ok_or_else(|| err("column `routing`: unexpected reader type"))?,
            )),
            None => None,
        };
        let mut version_reader = match &layout.version {
            Some(c) => Some((c, Numeric::open(c, open(c)?)?)),
            None => None,
        };
        let mut feature_readers = layout
            .features
            .iter()
            .map(|c| Ok((c, Numeric::open(c, open(c)?)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut done = 0usize;
        while done < rows {
            let n = BATCH.min(rows - done);
            let located = |name: &str, e: String| {
                err(format!(
                    "column `{name}`, row group {group}, rows {}..{}: {e}",
                    row + 1,
                    row + n as u64
                ))
            };
            read_strings(&mut id_reader, layout.id.max_def, n, &mut scratch, &mut ids)
                .map_err(|e| located("id", e))?;
            match routing_reader.as_mut() {
                Some((c, r)) => read_strings(r, c.max_def, n, &mut scratch, &mut routings)
                    .map_err(|e| located(&c.name, e))?,
                None => {
                    routings.clear();
                    routings.resize(n, None);
                }
            }
            match version_reader.as_mut() {
                Some((c, r)) => r
                    .read_integers(c.max_def, n, &mut scratch, &mut versions)
                    .map_err(|e| located(&c.name, e))?,
                None => {
                    versions.clear();
                    versions.resize(n, Some(0));
                }
            }
            for ((c, r), out) in feature_readers.iter_mut().zip(values.iter_mut()) {
                r.read(c.max_def, n, &mut scratch, out)
                    .map_err(|e| located(&c.name, e))?;
            }
            for i in 0..n {
                row += 1;
                let at = |problem: String| err(format!("row {row} (row group {group}): {problem}"));
                let Some(id) = ids[i].as_deref() else {
                    return Err(at("`id` is null".into()));
                };
                let Some(version) = versions[i] else {
                    return Err(at("`version` is null".into()));
                };
                let version = u64::try_from(version)
                    .map_err(|_| at(format!("`version` {version} is negative")))?;
                let mut features = Vec::with_capacity(layout.features.len());
                for (c, column) in layout.features.iter().zip(values.iter()) {
                    let value = column[i];
                    if value.is_some_and(f64::is_infinite) {
                        return Err(at(format!(
                            "`{}` is infinite (JSON Lines cannot carry it either)",
                            c.name
                        )));
                    }
                    // NaN is how the store marks an absent feature: the same as null.
                    features.push((c.name.as_str(), value.filter(|v| !v.is_nan())));
                }
                builder.push(id, routings[i].as_deref(), version, features, at)?;
            }
            done += n;
        }
    }
    builder.finish(fingerprint, built_by)
}

#[derive(Default)]
struct Scratch {
    defs: Vec<i16>,
}

/// Reads `n` records' definition levels and values; `present(i)` for each record.
fn read_typed<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    max_def: i16,
    n: usize,
    scratch: &mut Scratch,
    values: &mut Vec<T::T>,
) -> Result<(), String> {
    scratch.defs.clear();
    values.clear();
    let defs = (max_def > 0).then_some(&mut scratch.defs);
    let (records, _, _) = reader
        .read_records(n, defs, None, values)
        .map_err(|e| e.to_string())?;
    if records != n {
        return Err(format!("{records} values where the row group has {n} rows"));
    }
    Ok(())
}

/// Spreads the non-null `values` over the records by definition level (`max_def` = present).
fn spread<V: Copy, O>(
    values: &[V],
    defs: &[i16],
    max_def: i16,
    n: usize,
    convert: impl Fn(V) -> O,
    out: &mut Vec<Option<O>>,
) -> Result<(), String> {
    out.clear();
    if max_def == 0 {
        out.extend(values.iter().map(|v| Some(convert(*v))));
    } else {
        let mut next = values.iter();
        for d in defs {
            if *d == max_def {
                let v = next.next().ok_or("fewer values than definition levels")?;
                out.push(Some(convert(*v)));
            } else {
                out.push(None);
            }
        }
    }
    if out.len() != n {
        return Err(format!("{} values where {n} were expected", out.len()));
    }
    Ok(())
}

/// `n` records of a string column (`id`, `routing`); `None` for null.
fn read_strings(
    reader: &mut ColumnReaderImpl<ByteArrayType>,
    max_def: i16,
    n: usize,
    scratch: &mut Scratch,
    out: &mut Vec<Option<String>>,
) -> Result<(), String> {
    let mut values = Vec::with_capacity(n);
    read_typed(reader, max_def, n, scratch, &mut values)?;
    out.clear();
    let mut next = values.iter();
    for i in 0..n {
        let present = max_def == 0 || scratch.defs.get(i) == Some(&max_def);
        if !present {
            out.push(None);
            continue;
        }
        let v = next.next().ok_or("fewer values than definition levels")?;
        let id =
            std::str::from_utf8(v.data()).map_err(|_| "a value is not valid UTF-8".to_string())?;
        out.push(Some(id.to_string()));
    }
    Ok(())
}

/// A typed reader of one numeric column, with its value buffer.
enum Numeric {
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
    I32(ColumnReaderImpl<Int32Type>, Vec<i32>, bool),
    I64(ColumnReaderImpl<Int64Type>, Vec<i64>, bool),
    F32(ColumnReaderImpl<FloatType>, Vec<f32>),
    F64(ColumnReaderImpl<DoubleType>, Vec<f64>),
}

impl Numeric {
    fn open(column: &Column, reader: ColumnReader) -> Result<Self, StoreError> {
        let wrong = || err(format!("column `{}`: unexpected reader type", column.name));
        Ok(match column.kind {
            Kind::Bool => Numeric::Bool(
                BoolType::get_column_reader(reader).ok_or_else(wrong)?,
                Vec::new(),
            ),
            Kind::I32 | Kind::U32 => Numeric::I32(
                Int32Type::get_column_reader(reader).ok_or_else(wrong)?,
                Vec::new(),
                column.kind == Kind::U32,
            ),
            Kind::I64 | Kind::U64 => Numeric::I64(
                Int64Type::get_column_reader(reader).ok_or_else(wrong)?,
                Vec::new(),
                column.kind == Kind::U64,
            ),
            Kind::F32 => Numeric::F32(
                FloatType::get_column_reader(reader).ok_or_else(wrong)?,
                Vec::new(),
            ),
            Kind::F64 => Numeric::F64(
                DoubleType::get_column_reader(reader).ok_or_else(wrong)?,
                Vec::new(),
            ),
        })
    }

    /// `n` records of an integer column, exactly (for `version`).
    fn read_integers(
        &mut self,
        max_def: i16,
        n: usize,
        scratch: &mut Scratch,
        out: &mut Vec<Option<i128>>,
    ) -> Result<(), String> {
        match self {
            Numeric::I32(r, v, unsigned) => {
                read_typed(r, max_def, n, scratch, v)?;
                let unsigned = *unsigned;
                spread(
                    v,
                    &scratch.defs,
                    max_def,
                    n,
                    |x| {
                        if unsigned {
                            i128::from(x as u32)
                        } else {
                            i128::from(x)
                        }
                    },
                    out,
                )
            }
            Numeric::I64(r, v, unsigned) => {
                read_typed(r, max_def, n, scratch, v)?;
                let unsigned = *unsigned;
                spread(
                    v,
                    &scratch.defs,
                    max_def,
                    n,
                    |x| {
                        if unsigned {
                            i128::from(x as u64)
                        } else {
                            i128::from(x)
                        }
                    },
                    out,
                )
            }
            _ => Err("not an integer column".into()),
        }
    }

    /// `n` records as f64: integers as `as f64` (round to nearest, as serde_json turns an
    /// integer literal into an f64), float widened exactly, booleans 0/1; `None` for null.
    fn read(
        &mut self,
        max_def: i16,
        n: usize,
        scratch: &mut Scratch,
        out: &mut Vec<Option<f64>>,
    ) -> Result<(), String> {
        match self {
            Numeric::Bool(r, v) => {
                read_typed(r, max_def, n, scratch, v)?;
                spread(
                    v,
                    &scratch.defs,
                    max_def,
                    n,
                    |b| if b { 1.0 } else { 0.0 },
                    out,
                )
            }
            Numeric::I32(r, v, unsigned) => {
                read_typed(r, max_def, n, scratch, v)?;
                if *unsigned {
                    spread(v, &scratch.defs, max_def, n, |x| f64::from(x as u32), out)
                } else {
                    spread(v, &scratch.defs, max_def, n, f64::from, out)
                }
            }
            Numeric::I64(r, v, unsigned) => {
                read_typed(r, max_def, n, scratch, v)?;
                if *unsigned {
                    spread(v, &scratch.defs, max_def, n, |x| x as u64 as f64, out)
                } else {
                    spread(v, &scratch.defs, max_def, n, |x| x as f64, out)
                }
            }
            Numeric::F32(r, v) => {
                read_typed(r, max_def, n, scratch, v)?;
                spread(v, &scratch.defs, max_def, n, f64::from, out)
            }
            Numeric::F64(r, v) => {
                read_typed(r, max_def, n, scratch, v)?;
                spread(v, &scratch.defs, max_def, n, |x| x, out)
            }
        }
    }
}
