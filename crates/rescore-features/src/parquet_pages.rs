//! A page reader in front of the parquet crate's, refusing dictionary pages whose header
//! declares more values than the page's bytes can hold.
//!
//! The crate sizes a dictionary by the count in the page header before decoding it: a
//! damaged 748-byte file declaring 2^30 `INT64` values made it allocate 8 GB (found by the
//! `items_parquet` fuzz target). Every encoded value takes at least `min_value_bytes` of the
//! page, so a count beyond `bytes / min_value_bytes` cannot be honest.

use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::schema::types::ColumnDescriptor;

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
