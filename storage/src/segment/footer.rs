//! The segment container: fixed header, section table and footer.
//!
//! Little-endian throughout. Sections start at multiples of [`SECTION_ALIGN`] so that `f32` and
//! `u64` arrays can be viewed in place from a page-aligned map.
//!
//! ```text
//! | header 64 | section | pad | section | pad | ... | section table | footer 32 |
//!
//! header:  | magic "SKSG" 4 | version u16 | flags u16 | dim u32 | metric u8 | pad 3 |
//!          | rows u64 | field_count u32 | pad 4 | segment_id u64 | reserved 20 | crc32c u32 |
//! entry:   | kind u16 | field u16 | reserved u32 | offset u64 | len u64 | crc32c u32 | reserved u32 |
//! footer:  | table_offset u64 | section_count u32 | table_crc32c u32 | file_len u64 |
//!          | footer_crc32c u32 | magic "GSKS" 4 |
//! ```
//!
//! The header, the table and the footer each carry a checksum, and so does every section. A
//! reader checks the header, footer and table, every section's bounds, and the checksums of the
//! small sections at open; the bulk sections (vectors, blob/text data) are checked by
//! `verify`, so that opening does not read the whole file.

use crate::codec::{Enc, u16_at, u32_at, u64_at};
use crate::preamble::{Preamble, PreambleError, check_preamble};

/// Magic at the start of a segment file.
pub const MAGIC: [u8; 4] = *b"SKSG";
/// Magic at the very end of a segment file.
pub const FOOTER_MAGIC: [u8; 4] = *b"GSKS";
/// v1: first format.
pub const VERSION: u16 = 1;
/// Oldest version this build reads.
pub const OLDEST_SUPPORTED: u16 = 1;
/// Alignment of every section's first byte.
pub const SECTION_ALIGN: usize = 64;

/// Size of the header.
pub const HEADER_LEN: usize = 64;
const VERSION_OFFSET: usize = MAGIC.len();
const FLAGS_OFFSET: usize = VERSION_OFFSET + 2;
const DIM_OFFSET: usize = FLAGS_OFFSET + 2;
const METRIC_OFFSET: usize = DIM_OFFSET + 4;
const ROWS_OFFSET: usize = METRIC_OFFSET + 4;
const FIELD_COUNT_OFFSET: usize = ROWS_OFFSET + 8;
const SEGMENT_ID_OFFSET: usize = FIELD_COUNT_OFFSET + 8;
const HEADER_CRC_OFFSET: usize = HEADER_LEN - 4;
const PREAMBLE: Preamble = Preamble::new(MAGIC, "segment", HEADER_LEN, HEADER_CRC_OFFSET, (OLDEST_SUPPORTED, VERSION));

/// Size of one section-table entry.
pub const ENTRY_LEN: usize = 32;
const ENTRY_FIELD_OFFSET: usize = 2;
const ENTRY_OFFSET_OFFSET: usize = ENTRY_FIELD_OFFSET + 2 + 4;
const ENTRY_LEN_OFFSET: usize = ENTRY_OFFSET_OFFSET + 8;
const ENTRY_CRC_OFFSET: usize = ENTRY_LEN_OFFSET + 8;

/// Size of the footer.
pub const FOOTER_LEN: usize = 32;
const FOOTER_COUNT_OFFSET: usize = 8;
const FOOTER_TABLE_CRC_OFFSET: usize = FOOTER_COUNT_OFFSET + 4;
const FOOTER_FILE_LEN_OFFSET: usize = FOOTER_TABLE_CRC_OFFSET + 4;
const FOOTER_CRC_OFFSET: usize = FOOTER_FILE_LEN_OFFSET + 8;
const FOOTER_MAGIC_OFFSET: usize = FOOTER_CRC_OFFSET + 4;

/// Most sections a segment may declare (bounds the table parse).
pub const MAX_SECTIONS: u32 = 4096;

/// What a section holds. `field` in its entry names the schema field it belongs to (0 for
/// segment-wide sections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum SectionKind {
    /// Field names and types: `count u32` then `type u8, name (u32 len, bytes)` per field.
    Schema = 1,
    /// `rows x dim` f32, row-major.
    Vectors = 2,
    /// Row -> id, `rows x u64`.
    Ids = 3,
    /// `(id u64, row u64)` pairs sorted by id, ids unique.
    IdIndex = 4,
    /// Bit `r` set when the field has a value in row `r`; `ceil(rows / 8)` bytes.
    Validity = 5,
    /// Fixed-width values, `rows x width` (null rows hold zeros).
    Fixed = 6,
    /// `(rows + 1) x u64` offsets into [`SectionKind::VarData`].
    VarOffsets = 7,
    /// Concatenated bytes of a text or blob field.
    VarData = 8,
    /// `(n + 1) x u64` offsets into [`SectionKind::DictData`]; keyword dictionary.
    DictOffsets = 9,
    /// Concatenated, strictly sorted, UTF-8 distinct keyword values.
    DictData = 10,
    /// Row -> dictionary code, `rows x u32`; `u32::MAX` is null.
    Codes = 11,
    /// `(n + 1) x u64` offsets into [`SectionKind::BitmapData`].
    BitmapOffsets = 12,
    /// Serialized roaring bitmaps (rows holding each dictionary value), in dictionary order.
    BitmapData = 13,
    /// The frozen HNSW graph (see `graph.rs`).
    Graph = 14,
    /// Quantized codes for traversal (see `codes.rs`).
    QuantCodes = 15,
    /// Range index of an integer, float, timestamp or bool field (see `ranges.rs`).
    Ranges = 20,
    /// Spatial index of a geo bbox field (see `geo.rs`).
    Geo = 21,
    /// Search calibration: `ef u32, recall_x10000 u32, queries u32` (the smallest `ef` whose
    /// recall@10 on held-out query-sample vectors reached the build's target).
    Calibration = 22,
}

impl SectionKind {
    /// Parses a stored kind.
    #[must_use]
    pub fn from_u16(v: u16) -> Option<SectionKind> {
        use SectionKind as K;
        [
            K::Schema,
            K::Vectors,
            K::Ids,
            K::IdIndex,
            K::Validity,
            K::Fixed,
            K::VarOffsets,
            K::VarData,
            K::DictOffsets,
            K::DictData,
            K::Codes,
            K::BitmapOffsets,
            K::BitmapData,
            K::Graph,
            K::QuantCodes,
            K::Ranges,
            K::Geo,
            K::Calibration,
        ]
        .into_iter()
        .find(|k| *k as u16 == v)
    }

    /// Bulk sections are checksummed by `verify`, not at open.
    #[must_use]
    pub fn is_bulk(self) -> bool {
        matches!(self, SectionKind::Vectors | SectionKind::VarData | SectionKind::Graph | SectionKind::QuantCodes)
    }

    /// Human name used in errors and `verify` reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Schema => "schema",
            SectionKind::Vectors => "vectors",
            SectionKind::Ids => "ids",
            SectionKind::IdIndex => "id index",
            SectionKind::Validity => "validity",
            SectionKind::Fixed => "fixed column",
            SectionKind::VarOffsets => "var offsets",
            SectionKind::VarData => "var data",
            SectionKind::DictOffsets => "dictionary offsets",
            SectionKind::DictData => "dictionary",
            SectionKind::Codes => "keyword codes",
            SectionKind::BitmapOffsets => "bitmap offsets",
            SectionKind::BitmapData => "bitmaps",
            SectionKind::Graph => "graph",
            SectionKind::QuantCodes => "quantized codes",
            SectionKind::Ranges => "range index",
            SectionKind::Geo => "geo index",
            SectionKind::Calibration => "calibration",
        }
    }
}

/// Fixed header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Vector dimension.
    pub dim: u32,
    /// 0 = cosine, 1 = inner product.
    pub metric: u8,
    /// Rows in the segment.
    pub rows: u64,
    /// Fields in the schema section.
    pub field_count: u32,
    /// The segment's id inside its collection.
    pub segment_id: u64,
}

impl Header {
    /// Encodes the header with its checksum.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.buf.extend_from_slice(&MAGIC);
        e.u16(self.version);
        e.u16(0);
        e.u32(self.dim);
        e.u8(self.metric);
        e.buf.extend_from_slice(&[0; 3]);
        e.u64(self.rows);
        e.u32(self.field_count);
        e.u32(0);
        e.u64(self.segment_id);
        e.buf.resize(HEADER_CRC_OFFSET, 0);
        let crc = crc32c::crc32c(&e.buf);
        e.u32(crc);
        e.buf
    }

    /// Decodes a header; `Err(reason)` names what is wrong. Checksum first, then version.
    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        check_preamble(b, &PREAMBLE).map_err(|e| match e {
            PreambleError::Short(_) => HeaderError::Bad("file shorter than the header"),
            PreambleError::Magic => HeaderError::Bad("bad magic: not a skysift segment"),
            PreambleError::Checksum { expected, got } => HeaderError::Checksum { expected, got },
            PreambleError::Version(v) => HeaderError::Version(v),
        })?;
        let h = Header {
            version: u16_at(b, VERSION_OFFSET).unwrap_or(0),
            dim: u32_at(b, DIM_OFFSET).unwrap_or(0),
            metric: b.get(METRIC_OFFSET).copied().unwrap_or(0),
            rows: u64_at(b, ROWS_OFFSET).unwrap_or(0),
            field_count: u32_at(b, FIELD_COUNT_OFFSET).unwrap_or(0),
            segment_id: u64_at(b, SEGMENT_ID_OFFSET).unwrap_or(0),
        };
        Ok(h)
    }
}

/// Why a header or footer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Structurally wrong.
    Bad(&'static str),
    /// Checksum mismatch.
    Checksum {
        /// Stored checksum.
        expected: u32,
        /// Computed checksum.
        got: u32,
    },
    /// A version this build does not read.
    Version(u16),
}

/// One entry of the section table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionEntry {
    /// What the section holds.
    pub kind: SectionKind,
    /// Schema field index (0 for segment-wide sections).
    pub field: u16,
    /// Offset of the first byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// crc32c of the section's bytes.
    pub crc: u32,
}

impl SectionEntry {
    /// Appends the entry's bytes.
    pub fn encode(&self, e: &mut Enc) {
        e.u16(self.kind as u16);
        e.u16(self.field);
        e.u32(0);
        e.u64(self.offset);
        e.u64(self.len);
        e.u32(self.crc);
        e.u32(0);
    }

    /// Decodes one entry from exactly [`ENTRY_LEN`] bytes.
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<SectionEntry> {
        Some(SectionEntry {
            kind: SectionKind::from_u16(u16_at(b, 0)?)?,
            field: u16_at(b, ENTRY_FIELD_OFFSET)?,
            offset: u64_at(b, ENTRY_OFFSET_OFFSET)?,
            len: u64_at(b, ENTRY_LEN_OFFSET)?,
            crc: u32_at(b, ENTRY_CRC_OFFSET)?,
        })
    }
}

/// The footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the section table.
    pub table_offset: u64,
    /// Entries in the table.
    pub section_count: u32,
    /// crc32c of the table.
    pub table_crc: u32,
    /// Length of the whole file (detects truncation and appended bytes).
    pub file_len: u64,
}

impl Footer {
    /// Encodes the footer with its checksum and magic.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u64(self.table_offset);
        e.u32(self.section_count);
        e.u32(self.table_crc);
        e.u64(self.file_len);
        let crc = crc32c::crc32c(&e.buf);
        e.u32(crc);
        e.buf.extend_from_slice(&FOOTER_MAGIC);
        e.buf
    }

    /// Decodes the footer from the last [`FOOTER_LEN`] bytes of a file.
    pub fn decode(b: &[u8]) -> Result<Footer, HeaderError> {
        if b.len() != FOOTER_LEN {
            return Err(HeaderError::Bad("file shorter than the footer"));
        }
        if b.get(FOOTER_MAGIC_OFFSET..) != Some(&FOOTER_MAGIC[..]) {
            return Err(HeaderError::Bad("bad footer magic: file truncated or not a segment"));
        }
        let stored = u32_at(b, FOOTER_CRC_OFFSET).unwrap_or(0);
        let got = crc32c::crc32c(b.get(..FOOTER_CRC_OFFSET).unwrap_or(&[]));
        if stored != got {
            return Err(HeaderError::Checksum { expected: stored, got });
        }
        Ok(Footer {
            table_offset: u64_at(b, 0).unwrap_or(0),
            section_count: u32_at(b, FOOTER_COUNT_OFFSET).unwrap_or(0),
            table_crc: u32_at(b, FOOTER_TABLE_CRC_OFFSET).unwrap_or(0),
            file_len: u64_at(b, FOOTER_FILE_LEN_OFFSET).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_footer_round_trip() {
        let h = Header { version: VERSION, dim: 512, metric: 1, rows: 9, field_count: 5, segment_id: 3 };
        let b = h.encode();
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(Header::decode(&b).unwrap(), h);
        let f = Footer { table_offset: 128, section_count: 4, table_crc: 7, file_len: 1000 };
        let b = f.encode();
        assert_eq!(b.len(), FOOTER_LEN);
        assert_eq!(Footer::decode(&b).unwrap(), f);
        let e = SectionEntry { kind: SectionKind::Codes, field: 2, offset: 64, len: 8, crc: 9 };
        let mut enc = Enc::default();
        e.encode(&mut enc);
        assert_eq!(enc.buf.len(), ENTRY_LEN);
        assert_eq!(SectionEntry::decode(&enc.buf), Some(e));
    }
}
