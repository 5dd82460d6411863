//! Minimal, dependency-free Apache Parquet writer.
//!
//! Covers only what recommendation export needs: a flat schema of REQUIRED UTF-8, DOUBLE and
//! INT64 columns, written as one row group with one PLAIN, uncompressed v1 data page per
//! column. The footer is hand-encoded in the Thrift compact protocol; field ids and enum
//! values follow `parquet.thrift` from apache/parquet-format.

use std::io::Write;

const MAGIC: &[u8; 4] = b"PAR1";

// Thrift compact protocol element types.
const CT_I32: u8 = 5;
const CT_I64: u8 = 6;
const CT_BINARY: u8 = 8;
const CT_LIST: u8 = 9;
const CT_STRUCT: u8 = 12;

// parquet.thrift enum values.
const TYPE_INT64: i32 = 2;
const TYPE_DOUBLE: i32 = 5;
const TYPE_BYTE_ARRAY: i32 = 6;
const REPETITION_REQUIRED: i32 = 0;
const CONVERTED_UTF8: i32 = 0;
const ENCODING_PLAIN: i32 = 0;
const ENCODING_RLE: i32 = 3;
const CODEC_UNCOMPRESSED: i32 = 0;
const PAGE_DATA: i32 = 0;

/// String statistics are written exactly or not at all; long values would only bloat the
/// footer, and truncated bounds would need extra exactness flags.
const MAX_STRING_STAT_LEN: usize = 256;

/// One column's values; every column is REQUIRED (no nulls).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// UTF-8 text, stored as BYTE_ARRAY annotated as STRING.
    Utf8(Vec<String>),
    /// IEEE 754 doubles, stored as DOUBLE.
    Float64(Vec<f64>),
    /// Signed 64-bit integers, stored as INT64.
    Int64(Vec<i64>),
}

/// A named column of the single row group.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name as it appears in the schema.
    pub name: String,
    /// The column's values, one per row.
    pub data: ColumnData,
}

/// Reasons a Parquet file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// Parquet has no representation for a schema without leaf columns.
    #[error("parquet: at least one column is required")]
    NoColumns,
    /// Every column of a row group must have one value per row.
    #[error("parquet: column `{name}` has {len} rows but column `{first}` has {expected}")]
    RaggedColumns {
        /// The first column, whose length sets the row count.
        first: String,
        /// Row count of `first`.
        expected: usize,
        /// The offending column.
        name: String,
        /// Row count of `name`.
        len: usize,
    },
    /// Readers resolve columns by name; pyarrow refuses to read files with duplicates.
    #[error("parquet: duplicate column name `{0}`")]
    DuplicateColumn(String),
    /// Page sizes, value and column counts are i32 in the format, the footer length u32.
    #[error("parquet: {0} is too large for the Parquet format")]
    TooLarge(String),
    /// The underlying writer failed.
    #[error("parquet: write failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ColumnData {
    fn len(&self) -> usize {
        match self {
            Self::Utf8(v) => v.len(),
            Self::Float64(v) => v.len(),
            Self::Int64(v) => v.len(),
        }
    }

    fn physical_type(&self) -> i32 {
        match self {
            Self::Utf8(_) => TYPE_BYTE_ARRAY,
            Self::Float64(_) => TYPE_DOUBLE,
            Self::Int64(_) => TYPE_INT64,
        }
    }

    /// Computed up front so oversize columns are rejected before any byte is written.
    fn plain_len(&self) -> usize {
        match self {
            Self::Utf8(v) => v.iter().map(|s| 4 + s.len()).sum(),
            Self::Float64(v) => 8 * v.len(),
            Self::Int64(v) => 8 * v.len(),
        }
    }

    fn plain(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.plain_len());
        match self {
            // `plain_len` was checked against i32::MAX, so each length fits in u32.
            Self::Utf8(v) => v.iter().for_each(|s| {
                buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }),
            Self::Float64(v) => buf.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            Self::Int64(v) => buf.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        }
        buf
    }

    /// Plain-encoded (min, max) under the type-defined order, if worth writing.
    fn min_max(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match self {
            // Rust orders `str` bytewise, which is the unsigned order Parquet mandates.
            Self::Utf8(v) => {
                let (lo, hi) = (v.iter().min()?, v.iter().max()?);
                (lo.len().max(hi.len()) <= MAX_STRING_STAT_LEN)
                    .then(|| (lo.as_bytes().to_vec(), hi.as_bytes().to_vec()))
            }
            Self::Float64(v) => {
                // NaN must not appear in bounds; an all-NaN column gets none.
                let mut finite = v.iter().copied().filter(|x| !x.is_nan());
                let first = finite.next()?;
                let (lo, hi) = finite.fold((first, first), |(l, h), x| (l.min(x), h.max(x)));
                // The spec requires zero bounds to be -0.0 / +0.0 so both zeros fall inside.
                let lo = if lo == 0.0 { -0.0 } else { lo };
                let hi = if hi == 0.0 { 0.0 } else { hi };
                Some((lo.to_le_bytes().to_vec(), hi.to_le_bytes().to_vec()))
            }
            Self::Int64(v) => Some((
                v.iter().min()?.to_le_bytes().to_vec(),
                v.iter().max()?.to_le_bytes().to_vec(),
            )),
        }
    }
}

/// Thrift compact protocol encoder for the handful of types the footer uses.
#[derive(Default)]
struct Thrift {
    buf: Vec<u8>,
    /// Field ids are delta-encoded against the previous field of the same struct.
    last_id: i16,
    outer_ids: Vec<i16>,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Thrift {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn field(&mut self, id: i16, ty: u8) {
        let delta = i32::from(id) - i32::from(self.last_id);
        if (1..=15).contains(&delta) {
            self.buf.push(((delta as u8) << 4) | ty);
        } else {
            self.buf.push(ty);
            self.varint(zigzag(i64::from(id)));
        }
        self.last_id = id;
    }

    fn i32(&mut self, id: i16, v: i32) {
        self.field(id, CT_I32);
        self.varint(zigzag(i64::from(v)));
    }

    fn i64(&mut self, id: i16, v: i64) {
        self.field(id, CT_I64);
        self.varint(zigzag(v));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    fn binary(&mut self, id: i16, b: &[u8]) {
        self.field(id, CT_BINARY);
        self.bytes(b);
    }

    fn list(&mut self, id: i16, elem: u8, len: usize) {
        self.field(id, CT_LIST);
        if len < 15 {
            self.buf.push(((len as u8) << 4) | elem);
        } else {
            self.buf.push(0xF0 | elem);
            self.varint(len as u64);
        }
    }

    /// Opens a struct body: the top-level struct, a list element, or after `struct_field`.
    fn begin(&mut self) {
        self.outer_ids.push(self.last_id);
        self.last_id = 0;
    }

    fn end(&mut self) {
        self.buf.push(0);
        self.last_id = self.outer_ids.pop().unwrap_or(0);
    }

    fn struct_field(&mut self, id: i16) {
        self.field(id, CT_STRUCT);
        self.begin();
    }

    /// An empty struct, as used by Parquet's marker unions (STRING, TYPE_ORDER).
    fn empty_struct(&mut self, id: i16) {
        self.struct_field(id);
        self.end();
    }
}

/// A column's single page: its header, and where header plus values land in the file.
struct Chunk {
    header: Vec<u8>,
    offset: usize,
    len: usize,
}

/// Lays out every page before writing, so the footer (and its size check) exists up front.
fn plan(columns: &[Column], rows: i32) -> Vec<Chunk> {
    let mut offset = MAGIC.len();
    let mut chunks = Vec::with_capacity(columns.len());
    for col in columns {
        let size = col.data.plain_len();
        // Lossless: `validate` bounded every page by i32::MAX.
        let header = page_header(rows, size as i32);
        let len = header.len() + size;
        chunks.push(Chunk {
            header,
            offset,
            len,
        });
        offset += len;
    }
    chunks
}

fn page_header(num_values: i32, size: i32) -> Vec<u8> {
    let mut t = Thrift::default();
    t.begin();
    t.i32(1, PAGE_DATA);
    t.i32(2, size); // uncompressed_page_size
    t.i32(3, size); // compressed_page_size
    t.struct_field(5); // data_page_header
    t.i32(1, num_values);
    t.i32(2, ENCODING_PLAIN);
    t.i32(3, ENCODING_RLE); // definition levels (absent: column is REQUIRED)
    t.i32(4, ENCODING_RLE); // repetition levels (absent: schema is flat)
    t.end();
    t.end();
    t.buf
}

fn file_metadata(columns: &[Column], rows: i32, chunks: &[Chunk]) -> Vec<u8> {
    let mut t = Thrift::default();
    t.begin();
    t.i32(1, 1); // version
    t.list(2, CT_STRUCT, columns.len() + 1); // schema, root first
    t.begin();
    t.binary(4, b"schema");
    t.i32(5, columns.len() as i32); // num_children; bounded by `validate`
    t.end();
    for col in columns {
        t.begin();
        t.i32(1, col.data.physical_type());
        t.i32(3, REPETITION_REQUIRED);
        t.binary(4, col.name.as_bytes());
        if matches!(col.data, ColumnData::Utf8(_)) {
            // Both annotations: converted_type for old readers, logicalType for new ones.
            t.i32(6, CONVERTED_UTF8);
            t.struct_field(10);
            t.empty_struct(1); // LogicalType.STRING
            t.end();
        }
        t.end();
    }
    t.i64(3, i64::from(rows));
    t.list(4, CT_STRUCT, 1); // row_groups
    t.begin();
    t.list(1, CT_STRUCT, columns.len());
    let mut total = 0i64;
    for (col, chunk) in columns.iter().zip(chunks) {
        let len = chunk.len as i64;
        total += len;
        t.begin();
        // Deprecated; the spec asks for 0 when no ColumnMetaData is written outside the footer.
        t.i64(2, 0);
        t.struct_field(3); // meta_data
        t.i32(1, col.data.physical_type());
        t.list(2, CT_I32, 2);
        t.varint(zigzag(ENCODING_PLAIN.into()));
        t.varint(zigzag(ENCODING_RLE.into()));
        t.list(3, CT_BINARY, 1); // path_in_schema
        t.bytes(col.name.as_bytes());
        t.i32(4, CODEC_UNCOMPRESSED);
        t.i64(5, i64::from(rows));
        t.i64(6, len); // total_uncompressed_size, page header included
        t.i64(7, len); // total_compressed_size
        t.i64(9, chunk.offset as i64); // data_page_offset
        t.struct_field(12); // statistics
        t.i64(3, 0); // null_count
        if let Some((min, max)) = col.data.min_max() {
            t.binary(5, &max); // max_value
            t.binary(6, &min); // min_value
        }
        t.end();
        t.end();
        t.end();
    }
    t.i64(2, total); // total_byte_size
    t.i64(3, i64::from(rows));
    t.end();
    t.binary(6, b"tally"); // created_by
    // min_value/max_value are only meaningful to readers when column_orders is present.
    t.list(7, CT_STRUCT, columns.len());
    for _ in columns {
        t.begin();
        t.empty_struct(1); // ColumnOrder.TYPE_ORDER
        t.end();
    }
    t.end();
    t.buf
}

/// Checks the whole input up front so that no input error surfaces mid-write.
fn validate(columns: &[Column]) -> Result<i32, ParquetError> {
    let first = columns.first().ok_or(ParquetError::NoColumns)?;
    let expected = first.data.len();
    let mut names = std::collections::HashSet::new();
    for col in columns {
        if !names.insert(col.name.as_str()) {
            return Err(ParquetError::DuplicateColumn(col.name.clone()));
        }
        let len = col.data.len();
        if len != expected {
            return Err(ParquetError::RaggedColumns {
                first: first.name.clone(),
                expected,
                name: col.name.clone(),
                len,
            });
        }
        if i32::try_from(col.data.plain_len()).is_err() {
            return Err(ParquetError::TooLarge(format!("column `{}`", col.name)));
        }
    }
    i32::try_from(columns.len()).map_err(|_| ParquetError::TooLarge("column count".into()))?;
    // Each value takes at least 4 bytes, so the size check above bounds the row count.
    i32::try_from(expected).map_err(|_| ParquetError::TooLarge(format!("column `{}`", first.name)))
}

/// Writes `columns` as one row group, one PLAIN-encoded uncompressed data page (v1) per column.
///
/// All input errors are reported before anything is written; an I/O error may leave `out`
/// holding a partial file.
pub fn write(columns: &[Column], out: &mut impl Write) -> Result<(), ParquetError> {
    let rows = validate(columns)?;
    let chunks = plan(columns, rows);
    let meta = file_metadata(columns, rows, &chunks);
    let meta_len =
        u32::try_from(meta.len()).map_err(|_| ParquetError::TooLarge("file footer".into()))?;
    out.write_all(MAGIC)?;
    for (col, chunk) in columns.iter().zip(&chunks) {
        out.write_all(&chunk.header)?;
        out.write_all(&col.data.plain())?;
    }
    out.write_all(&meta)?;
    out.write_all(&meta_len.to_le_bytes())?;
    out.write_all(MAGIC)?;
    Ok(())
}

/// Like [`write`], returning the complete file as bytes.
pub fn to_bytes(columns: &[Column]) -> Result<Vec<u8>, ParquetError> {
    let mut buf = Vec::new();
    write(columns, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Thrift)) -> Vec<u8> {
        let mut t = Thrift::default();
        f(&mut t);
        t.buf
    }

    fn col(name: &str, data: ColumnData) -> Column {
        Column {
            name: name.into(),
            data,
        }
    }

    #[test]
    fn varint() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (300, &[0xAC, 0x02]),
            (16_384, &[0x80, 0x80, 0x01]),
            (
                u64::MAX,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for &(v, bytes) in cases {
            assert_eq!(enc(|t| t.varint(v)), bytes, "varint({v})");
        }
    }

    #[test]
    fn zigzag_i32_and_i64() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i32::MAX.into()), 0xFFFF_FFFE);
        assert_eq!(zigzag(i32::MIN.into()), 0xFFFF_FFFF);
        assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
        // Field 1, type i32 (0x15), then zigzag varints.
        assert_eq!(enc(|t| t.i32(1, -1)), [0x15, 0x01]);
        assert_eq!(enc(|t| t.i32(1, 150)), [0x15, 0xAC, 0x02]);
        assert_eq!(
            enc(|t| t.i32(1, i32::MIN)),
            [0x15, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]
        );
        assert_eq!(enc(|t| t.i64(1, -3)), [0x16, 0x05]);
    }

    #[test]
    fn field_header_delta_and_long_form() {
        // Deltas 1 and 2 fit the high nibble.
        assert_eq!(
            enc(|t| {
                t.i32(1, 0);
                t.i32(3, 0)
            }),
            [0x15, 0x00, 0x25, 0x00]
        );
        // Delta 15 is the last short form; 16 needs type byte + zigzag i16 id (17 -> 34).
        assert_eq!(enc(|t| t.i32(15, 0)), [0xF5, 0x00]);
        assert_eq!(enc(|t| t.i64(17, 0)), [0x06, 0x22, 0x00]);
        // Going backwards also needs the long form.
        assert_eq!(
            enc(|t| {
                t.i32(2, 0);
                t.i32(1, 0)
            }),
            [0x25, 0x00, 0x05, 0x02, 0x00]
        );
    }

    #[test]
    fn binary() {
        assert_eq!(enc(|t| t.binary(4, b"abc")), [0x48, 0x03, b'a', b'b', b'c']);
        assert_eq!(enc(|t| t.binary(1, b"")), [0x18, 0x00]);
    }

    #[test]
    fn list_header_short_and_long_form() {
        assert_eq!(enc(|t| t.list(2, CT_I32, 2)), [0x29, 0x25]);
        assert_eq!(enc(|t| t.list(1, CT_STRUCT, 14)), [0x19, 0xEC]);
        assert_eq!(enc(|t| t.list(1, CT_STRUCT, 15)), [0x19, 0xFC, 0x0F]);
        assert_eq!(enc(|t| t.list(1, CT_BINARY, 300)), [0x19, 0xF8, 0xAC, 0x02]);
    }

    #[test]
    fn nested_struct_restores_outer_field_id() {
        let bytes = enc(|t| {
            t.begin();
            t.i32(5, 1);
            t.struct_field(6);
            t.i32(1, 1);
            t.end();
            t.i32(7, 1);
            t.end();
        });
        assert_eq!(
            bytes,
            [0x55, 0x02, 0x1C, 0x15, 0x02, 0x00, 0x15, 0x02, 0x00]
        );
    }

    #[test]
    fn ragged_columns_are_rejected() {
        let cols = [
            col("a", ColumnData::Int64(vec![1, 2])),
            col("b", ColumnData::Float64(vec![1.0])),
        ];
        let err = to_bytes(&cols).unwrap_err();
        assert!(matches!(
            err,
            ParquetError::RaggedColumns {
                expected: 2,
                len: 1,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "parquet: column `b` has 1 rows but column `a` has 2"
        );
        let mut out = Vec::new();
        assert!(write(&cols, &mut out).is_err());
        assert!(out.is_empty(), "nothing may be written for invalid input");
    }

    #[test]
    fn zero_columns_are_rejected() {
        assert!(matches!(to_bytes(&[]), Err(ParquetError::NoColumns)));
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let cols = [
            col("a", ColumnData::Int64(vec![])),
            col("a", ColumnData::Int64(vec![])),
        ];
        assert!(matches!(to_bytes(&cols), Err(ParquetError::DuplicateColumn(n)) if n == "a"));
    }

    fn footer(bytes: &[u8]) -> &[u8] {
        let n = bytes.len();
        let len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
        &bytes[n - 8 - len..n - 8]
    }

    #[test]
    fn file_layout() {
        let cols = [
            col("s", ColumnData::Utf8(vec!["x".into(), "é".into()])),
            col("f", ColumnData::Float64(vec![1.5, -2.0])),
            col("i", ColumnData::Int64(vec![7, -7])),
        ];
        let bytes = to_bytes(&cols).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
        let meta = footer(&bytes);
        assert_eq!(meta, file_metadata(&cols, 2, &plan(&cols, 2)));
        // FileMetaData starts with version = 1; the first page header with type DATA_PAGE.
        assert_eq!(meta[..2], [0x15, 0x02]);
        assert_eq!(bytes[4..6], [0x15, 0x00]);
        // The string page's values follow its header: length-prefixed PLAIN byte arrays.
        let page = page_header(2, 11);
        let start = 4 + page.len();
        assert_eq!(bytes[4..start], page[..]);
        assert_eq!(
            bytes[start..start + 10],
            [1, 0, 0, 0, b'x', 2, 0, 0, 0, 0xC3]
        );
    }

    #[test]
    fn zero_rows_still_make_a_file() {
        let cols = [
            col("s", ColumnData::Utf8(vec![])),
            col("i", ColumnData::Int64(vec![])),
        ];
        let bytes = to_bytes(&cols).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
        let page = page_header(0, 0);
        assert_eq!(
            bytes[4..4 + page.len()],
            page[..],
            "first chunk is a bare header"
        );
    }

    #[test]
    fn float_stats_skip_nan_and_sign_zero_bounds() {
        let (lo, hi) = ColumnData::Float64(vec![0.0, f64::NAN, -0.0])
            .min_max()
            .unwrap();
        assert_eq!(lo, (-0.0f64).to_le_bytes());
        assert_eq!(hi, 0.0f64.to_le_bytes());
        assert_eq!(ColumnData::Float64(vec![f64::NAN]).min_max(), None);
        assert_eq!(ColumnData::Utf8(vec!["a".repeat(300)]).min_max(), None);
    }
}
