//! Checks in front of the parquet crate's page reading, refusing pages whose headers declare
//! more than the file can honestly hold before the crate allocates for them:
//!
//! - [`CheckedChunk`], the file as one column chunk's page reader sees it, reads each page
//!   header's declared uncompressed size before the crate does. The crate reads the header and
//!   decompresses the page in one call, into a buffer of that size (zero-filled for Snappy, up
//!   to 2 GiB); a page may not declare more than its column chunk's total uncompressed size in
//!   the footer, nor more than [`PAGE_SIZE_CAP`]; a Snappy page may not declare more than
//!   Snappy can expand its compressed bytes to ([`SNAPPY_MAX_EXPANSION`]).
//! - [`CheckedPages`] refuses dictionary pages declaring more values than their bytes hold: the
//!   crate sizes a dictionary by that count before decoding it (a damaged 748-byte file
//!   declaring 2^30 `INT64` values made it allocate 8 GB; found by the `items_parquet` fuzz
//!   target). Every encoded value takes at least `min_value_bytes` of the page, so a count beyond
//!   `bytes / min_value_bytes` cannot be honest.

use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::ColumnDescriptor;

/// The most one page may declare uncompressed. Writers cut pages far below it (1 MiB by default
/// in pyarrow, Spark/parquet-mr, arrow-rs and polars; at most 100 MB for DuckDB's data pages),
/// and an item snapshot's columns are ids and numbers; the format's own limit is 2 GiB.
pub(crate) const PAGE_SIZE_CAP: u64 = 256 << 20;

/// Snappy's largest expansion: its longest copy element is 3 bytes for 64 bytes of output
/// (21.3x); literals and the length preamble expand less. A Snappy page declaring more than
/// this times its compressed size plus [`SNAPPY_SLACK`] cannot be honest, and the crate
/// zero-fills the declared size before decompressing.
pub(crate) const SNAPPY_MAX_EXPANSION: u64 = 22;
const SNAPPY_SLACK: u64 = 64;

/// Bytes read ahead of a page header to find its declared sizes: fields 1 to 3 of the
/// Thrift-compact `PageHeader` take at most 3 x (1 + 5) bytes.
const HEADER_PREFIX: u64 = 32;

/// One column chunk's view of the file: the crate reads each page header through
/// [`ChunkReader::get_read`] at the header's offset, and the page right after it, so the
/// header is checked there.
pub(crate) struct CheckedChunk {
    file: Arc<File>,
    /// The chunk's total uncompressed size from the footer, when it gives a positive one.
    footer_total: Option<u64>,
    /// Where the chunk ends in the file: a page header is never read past it.
    end: u64,
    /// The chunk is Snappy-compressed: its pages' declared sizes are bounded by their bytes.
    snappy: bool,
}

impl CheckedChunk {
    pub(crate) fn new(file: Arc<File>, chunk: &ColumnChunkMetaData) -> Self {
        let (start, len) = chunk.byte_range();
        CheckedChunk {
            file,
            footer_total: u64::try_from(chunk.uncompressed_size())
                .ok()
                .filter(|&n| n > 0),
            end: start.saturating_add(len),
            snappy: chunk.compression() == parquet::basic::Compression::SNAPPY,
        }
    }

    fn check_header(&self, start: u64) -> Result<()> {
        let available = Length::len(&*self.file).saturating_sub(start);
        let prefix = self
            .file
            .get_bytes(start, HEADER_PREFIX.min(available) as usize)?;
        let sizes = page_sizes(&prefix).ok_or_else(|| {
            ParquetError::General(format!(
                "the page header at byte {start} does not begin with its type and sizes (a damaged file)"
            ))
        })?;
        // A negative size is the crate's to refuse ("Invalid page header").
        let Ok(declared) = u64::try_from(sizes.uncompressed) else {
            return Ok(());
        };
        if let Some(total) = self.footer_total.filter(|&t| declared > t) {
            return Err(ParquetError::General(format!(
                "the page at byte {start} declares {declared} bytes uncompressed, more than its whole column chunk ({total} bytes in the file's footer): a damaged file"
            )));
        }
        if declared > PAGE_SIZE_CAP {
            return Err(ParquetError::General(format!(
                "the page at byte {start} declares {declared} bytes uncompressed, over the {} MiB limit for one page (rewrite the snapshot with smaller pages)",
                PAGE_SIZE_CAP >> 20
            )));
        }
        let compressed = sizes.compressed.and_then(|c| u64::try_from(c).ok());
        if let Some(compressed) = compressed.filter(|_| self.snappy) {
            let most = compressed
                .saturating_mul(SNAPPY_MAX_EXPANSION)
                .saturating_add(SNAPPY_SLACK);
            if declared > most {
                return Err(ParquetError::General(format!(
                    "the page at byte {start} declares {declared} bytes uncompressed, more than Snappy can expand its {compressed} compressed bytes to: a damaged file"
                )));
            }
        }
        Ok(())
    }
}

impl Length for CheckedChunk {
    fn len(&self) -> u64 {
        Length::len(&*self.file)
    }
}

impl ChunkReader for CheckedChunk {
    type T = HeaderRead;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        self.check_header(start)?;
        Ok(HeaderRead {
            inner: self.file.get_read(start)?,
            left: self.end.saturating_sub(start),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        self.file.get_bytes(start, length)
    }
}

/// A page header's bytes, up to the end of its column chunk; reading further is an error. The
/// crate's Thrift reader skips a field it does not use by reading its declared length to a
/// sink and does not stop at the end of the data: a 900-byte file (found by the
/// `items_parquet` fuzz target) kept it reading the end of the file, one empty read at a time,
/// for 25 s.
pub(crate) struct HeaderRead {
    inner: BufReader<File>,
    left: u64,
}

impl Read for HeaderRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a page header runs past the end of its column chunk (a damaged file)",
            ));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a page header runs past the end of the file (a damaged file)",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The sizes a page header declares.
#[derive(Debug, PartialEq)]
struct PageSizes {
    uncompressed: i32,
    /// `None` when field 3 does not follow among the leading i32 fields.
    compressed: Option<i32>,
}

/// Fields 2 (`uncompressed_page_size`) and 3 (`compressed_page_size`) of a Thrift-compact
/// `PageHeader` (parquet.thrift: 1 `type`, 2 `uncompressed_page_size`, 3
/// `compressed_page_size`, all required i32, written first). `None` when an i32 field 2 is not
/// among the leading i32 fields.
fn page_sizes(header: &[u8]) -> Option<PageSizes> {
    const I32: u8 = 5;
    let mut bytes = header.iter().copied();
    let mut id: i32 = 0;
    let mut uncompressed = None;
    loop {
        let Some(field) = bytes.next() else {
            return uncompressed.map(|uncompressed| PageSizes {
                uncompressed,
                compressed: None,
            });
        };
        let (delta, kind) = (field >> 4, field & 0x0f);
        // A stop byte (kind 0) or any other type: the leading i32 fields end here.
        let value = (kind == I32)
            .then(|| {
                id = if delta == 0 {
                    zigzag(varint(&mut bytes)?)
                } else {
                    id + i32::from(delta)
                };
                Some(zigzag(varint(&mut bytes)?))
            })
            .flatten();
        match (value, id) {
            (Some(v), 2) => uncompressed = Some(v),
            (Some(v), 3) => {
                return uncompressed.map(|uncompressed| PageSizes {
                    uncompressed,
                    compressed: Some(v),
                })
            }
            (Some(_), _) if uncompressed.is_none() => {}
            _ => {
                return uncompressed.map(|uncompressed| PageSizes {
                    uncompressed,
                    compressed: None,
                })
            }
        }
    }
}

/// An unsigned LEB128 varint of at most 32 bits.
fn varint(bytes: &mut impl Iterator<Item = u8>) -> Option<u32> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = bytes.next()?;
        let bits = u32::from(byte & 0x7f);
        if shift == 28 && bits > 0x0f {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn zigzag(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

pub(crate) struct CheckedPages {
    inner: Box<dyn PageReader>,
    min_value_bytes: usize,
}

impl CheckedPages {
    pub(crate) fn new(inner: Box<dyn PageReader>, column: &ColumnDescriptor) -> Self {
        // The plain encoding of one value (dictionaries are plain-encoded); a byte array
        // carries at least its 4-byte length; booleans take a bit.
        let min_value_bytes = match column.physical_type() {
            PhysicalType::BOOLEAN => 0,
            PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 4,
            PhysicalType::INT64 | PhysicalType::DOUBLE => 8,
            PhysicalType::INT96 => 12,
            PhysicalType::FIXED_LEN_BYTE_ARRAY => {
                usize::try_from(column.type_length()).unwrap_or(0)
            }
        };
        CheckedPages {
            inner,
            min_value_bytes,
        }
    }

    fn check(&self, page: &Page) -> Result<()> {
        if let Page::DictionaryPage {
            buf, num_values, ..
        } = page
        {
            let needed = (*num_values as usize).saturating_mul(self.min_value_bytes);
            if needed > buf.len() {
                return Err(ParquetError::General(format!(
                    "a dictionary page declares {num_values} values but holds {} bytes",
                    buf.len()
                )));
            }
        }
        Ok(())
    }
}

impl Iterator for CheckedPages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for CheckedPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        let page = self.inner.get_next_page()?;
        if let Some(page) = &page {
            self.check(page)?;
        }
        Ok(page)
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.inner.skip_next_page()
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        self.inner.at_record_boundary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared_uncompressed_size(header: &[u8]) -> Option<i32> {
        page_sizes(header).map(|s| s.uncompressed)
    }

    #[test]
    fn reads_the_declared_size_of_a_page_header() {
        // type 0 (DATA_PAGE), uncompressed 1000, compressed 400, then a struct field.
        let header = [0x15, 0x00, 0x15, 0xd0, 0x0f, 0x15, 0xa0, 0x06, 0x2c];
        assert_eq!(
            page_sizes(&header),
            Some(PageSizes {
                uncompressed: 1000,
                compressed: Some(400)
            })
        );
        // i32::MAX, as a damaged header might declare it; no field 3 in the bytes read.
        let header = [0x15, 0x04, 0x15, 0xfe, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            page_sizes(&header),
            Some(PageSizes {
                uncompressed: i32::MAX,
                compressed: None
            })
        );
        // Field 2 in the long form (delta 0, id 2 zigzag-encoded as 4), then a struct.
        let header = [0x15, 0x00, 0x05, 0x04, 0x02, 0x1c];
        assert_eq!(
            page_sizes(&header),
            Some(PageSizes {
                uncompressed: 1,
                compressed: None
            })
        );
    }

    #[test]
    fn a_header_not_beginning_with_its_sizes_is_not_read() {
        assert_eq!(declared_uncompressed_size(&[]), None);
        assert_eq!(declared_uncompressed_size(&[0x15, 0x00]), None);
        assert_eq!(declared_uncompressed_size(&[0x15, 0x00, 0x00]), None);
        // A struct where field 2 should be.
        assert_eq!(declared_uncompressed_size(&[0x15, 0x00, 0x1c]), None);
        // A varint longer than 32 bits.
        assert_eq!(
            declared_uncompressed_size(&[0x15, 0x00, 0x15, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            None
        );
    }
}
