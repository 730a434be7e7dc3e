//! `Segment`: an opened, immutable segment, viewed in place from its bytes.
//!
//! Opening checks the header, footer, section table, the bounds, alignment and lengths of every
//! section and the checksums of the schema and the ids: work that does not grow with the rows
//! beyond the ids' 8 bytes each. The sections of a field (validity, values, dictionaries,
//! bitmaps, range and spatial indexes) and the id index are checked (checksums, then the
//! structure of offsets, dictionaries and the id index) on the first use of that field or of the
//! id index, once per opened segment; a failed check is returned by that use and every later one
//! (the accessors of fields and of the id index return `Result`). A 1M-row segment with nine
//! fields opens without reading its 220 MB of field sections. [`Segment::verify`] checks every
//! checksum, the bulk sections' (vectors, text data, graph, codes) included.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use roaring::RoaringBitmap;

use super::columns::{FixedView, VarView};
use super::footer::{
    ENTRY_LEN, FOOTER_LEN, Footer, HEADER_LEN, Header, HeaderError, MAX_SECTIONS, OLDEST_SUPPORTED, SECTION_ALIGN,
    SectionEntry, SectionKind, VERSION,
};
use super::ids::IdsView;
use super::keywords::{KeywordSections, KeywordView};
use crate::bytes::Bytes;
use crate::codec::Dec;
use crate::error::{Error, Result};
use crate::preamble::check_crc;
use crate::schema::{FieldDef, FieldType, Metric, Schema, Value};

/// Where one field's sections are.
#[derive(Debug, Clone)]
enum ColumnRanges {
    Fixed {
        validity: Range<usize>,
        data: Range<usize>,
        ty: FieldType,
    },
    Var {
        validity: Range<usize>,
        offsets: Range<usize>,
        data: Range<usize>,
        ty: FieldType,
    },
    Keyword {
        dict_offsets: Range<usize>,
        dict: Range<usize>,
        codes: Range<usize>,
        bitmap_offsets: Range<usize>,
        bitmaps: Range<usize>,
    },
}

impl ColumnRanges {
    /// The sections of a keyword column in `b`; `None` for other columns.
    fn keyword_sections<'a>(&self, b: &'a [u8]) -> Option<KeywordSections<'a>> {
        let slice = |r: &Range<usize>| b.get(r.clone()).unwrap_or(&[]);
        match self {
            ColumnRanges::Keyword { dict_offsets, dict, codes, bitmap_offsets, bitmaps } => Some(KeywordSections {
                dict_offsets: slice(dict_offsets),
                dict: slice(dict),
                codes: slice(codes),
                bitmap_offsets: slice(bitmap_offsets),
                bitmaps: slice(bitmaps),
            }),
            _ => None,
        }
    }
}

/// A damaged region found by [`Segment::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Region name.
    pub region: String,
    /// Offset of the region.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// A failed deferred check, kept to be returned again by every later use.
#[derive(Debug, Clone)]
enum Failure {
    Checksum { region: String, offset: u64, expected: u32, got: u32 },
    Corrupted { region: String, offset: u64, reason: String },
}

impl Failure {
    fn error(&self, path: &Path) -> Error {
        match self {
            Failure::Checksum { region, offset, expected, got } => Error::ChecksumMismatch {
                file: path.into(),
                region: region.clone(),
                offset: *offset,
                expected: *expected,
                got: *got,
            },
            Failure::Corrupted { region, offset, reason } => {
                Error::corrupted(path, region.clone(), *offset, reason.clone())
            }
        }
    }
}

/// The outcome of a deferred check, computed on first use.
type Deferred = OnceLock<std::result::Result<(), Failure>>;

/// Sections checked on the first use of their field or of the id index rather than at open:
/// every section whose size grows with the rows, except the bulk ones (checked by `verify`
/// only) and the ids (mapped to results by every search).
fn is_deferred(kind: SectionKind) -> bool {
    use SectionKind as K;
    matches!(
        kind,
        K::IdIndex
            | K::Validity
            | K::Fixed
            | K::VarOffsets
            | K::DictOffsets
            | K::DictData
            | K::Codes
            | K::BitmapOffsets
            | K::BitmapData
            | K::Ranges
            | K::Geo
    )
}

/// An opened segment.
#[derive(Debug, Clone)]
pub struct Segment {
    path: PathBuf,
    bytes: Bytes,
    header: Header,
    fields: Vec<FieldDef>,
    sections: Vec<SectionEntry>,
    vectors: Range<usize>,
    ids: Range<usize>,
    id_index: Range<usize>,
    columns: Vec<ColumnRanges>,
    /// The deferred checks of each field's sections, by the segment's own field index.
    field_checks: Vec<Deferred>,
    /// The deferred check of the id index.
    id_index_check: Deferred,
    /// The calibration section, read once at open (see [`Segment::calibration`]).
    calibration: Option<(u32, f32, u32)>,
    /// Collection field index -> this segment's field index (`ABSENT` for a field added to the
    /// collection after the segment was written). The identity until [`Segment::bind_schema`].
    remap: Vec<usize>,
}

/// Marks a collection field the segment does not store.
const ABSENT: usize = usize::MAX;

fn header_error(path: &Path, region: &str, offset: u64, e: &HeaderError) -> Error {
    match *e {
        HeaderError::Bad(reason) => Error::corrupted(path, region, offset, reason),
        HeaderError::Checksum { expected, got } => {
            Error::ChecksumMismatch { file: path.into(), region: region.into(), offset, expected, got }
        }
        HeaderError::Version(found) => {
            Error::UnsupportedVersion { file: path.into(), found, oldest: OLDEST_SUPPORTED, current: VERSION }
        }
    }
}

/// `b` as a slice of `T` (empty when misaligned or of a length that does not divide).
pub(crate) fn cast<T: bytemuck::AnyBitPattern>(b: &[u8]) -> &[T] {
    // Alignment and length were checked when the segment was opened.
    bytemuck::try_cast_slice(b).unwrap_or(&[])
}

#[cfg(not(target_endian = "little"))]
compile_error!("skysift maps little-endian sections in place and builds only for little-endian targets");

impl Segment {
    /// Parses a segment held in `bytes` (mapped or on the heap).
    pub fn open(path: &Path, bytes: Bytes) -> Result<Segment> {
        let b = bytes.as_slice();
        let header = Header::decode(b).map_err(|e| header_error(path, "header", 0, &e))?;
        let (sections, by_key) = section_table(path, &bytes)?;
        let get = |kind: SectionKind, field: usize| -> Result<Range<usize>> {
            by_key
                .get(&(kind, field as u16))
                .cloned()
                .ok_or_else(|| Error::corrupted(path, kind.name(), 0, format!("missing section for field {field}")))
        };
        let need_len = |r: &Range<usize>, want: Option<usize>, kind: SectionKind| -> Result<()> {
            match want {
                Some(w) if r.len() == w => Ok(()),
                _ => Err(Error::corrupted(
                    path,
                    kind.name(),
                    r.start as u64,
                    format!("section is {} bytes, expected {want:?}", r.len()),
                )),
            }
        };
        let rows =
            usize::try_from(header.rows).map_err(|_| Error::corrupted(path, "header", 0, "row count too large"))?;
        let dim = header.dim as usize;
        // Schema.
        let schema_range = get(SectionKind::Schema, 0)?;
        let fields = parse_schema(b.get(schema_range.clone()).unwrap_or(&[]))
            .ok_or_else(|| Error::corrupted(path, "schema", schema_range.start as u64, "malformed schema section"))?;
        if fields.len() != header.field_count as usize {
            return Err(Error::corrupted(
                path,
                "schema",
                schema_range.start as u64,
                "field count differs from the header",
            ));
        }
        let vectors = get(SectionKind::Vectors, 0)?;
        need_len(&vectors, rows.checked_mul(dim).and_then(|n| n.checked_mul(4)), SectionKind::Vectors)?;
        let ids = get(SectionKind::Ids, 0)?;
        need_len(&ids, rows.checked_mul(8), SectionKind::Ids)?;
        let id_index = get(SectionKind::IdIndex, 0)?;
        need_len(&id_index, rows.checked_mul(16), SectionKind::IdIndex)?;
        let mut columns = Vec::with_capacity(fields.len());
        for (f, def) in fields.iter().enumerate() {
            let validity = get(SectionKind::Validity, f)?;
            need_len(&validity, Some(rows.div_ceil(8)), SectionKind::Validity)?;
            let col = match def.ty {
                FieldType::Keyword => {
                    let dict_offsets = get(SectionKind::DictOffsets, f)?;
                    let dict = get(SectionKind::DictData, f)?;
                    let codes = get(SectionKind::Codes, f)?;
                    need_len(&codes, rows.checked_mul(4), SectionKind::Codes)?;
                    let bitmap_offsets = get(SectionKind::BitmapOffsets, f)?;
                    let bitmaps = get(SectionKind::BitmapData, f)?;
                    ColumnRanges::Keyword { dict_offsets, dict, codes, bitmap_offsets, bitmaps }
                }
                FieldType::Text | FieldType::Blob => {
                    let offsets = get(SectionKind::VarOffsets, f)?;
                    need_len(&offsets, rows.checked_add(1).and_then(|n| n.checked_mul(8)), SectionKind::VarOffsets)?;
                    let data = get(SectionKind::VarData, f)?;
                    ColumnRanges::Var { validity, offsets, data, ty: def.ty }
                }
                ty => {
                    let data = get(SectionKind::Fixed, f)?;
                    need_len(&data, ty.fixed_width().and_then(|w| rows.checked_mul(w)), SectionKind::Fixed)?;
                    ColumnRanges::Fixed { validity, data, ty }
                }
            };
            columns.push(col);
        }
        let mut seg = Segment {
            path: path.to_path_buf(),
            bytes,
            header,
            remap: (0..fields.len()).collect(),
            fields,
            sections,
            vectors,
            ids,
            id_index,
            field_checks: columns.iter().map(|_| Deferred::new()).collect(),
            columns,
            id_index_check: Deferred::new(),
            calibration: None,
        };
        seg.calibration = seg.read_calibration();
        Ok(seg)
    }

    /// The file this segment was read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of rows (including deleted ones: tombstones live in the manifest).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.header.rows as usize
    }

    /// Vector dimension.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.header.dim as usize
    }

    /// Size of the file in bytes.
    #[must_use]
    pub fn file_len(&self) -> usize {
        self.bytes.len()
    }

    /// The segment's id.
    #[must_use]
    pub fn segment_id(&self) -> u64 {
        self.header.segment_id
    }

    /// Field definitions stored in the segment.
    #[must_use]
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// Number of fields of the schema this segment is bound to (its own until
    /// [`Segment::bind_schema`]); the valid `field` arguments of the accessors are below it.
    #[must_use]
    pub fn field_count(&self) -> usize {
        self.remap.len()
    }

    /// Checks that the segment was written for `schema`, or for an earlier version of it that
    /// lacked some fields ([`Schema::with_field`] only adds), and maps field indices by name so
    /// that every accessor below takes the collection's field index. A field the segment does
    /// not store reads as null in every row.
    pub fn bind_schema(&mut self, schema: &Schema) -> Result<()> {
        let metric = match schema.metric {
            Metric::Cosine => 0,
            Metric::InnerProduct => 1,
        };
        let differs = || Error::corrupted(&self.path, "schema", 0, "segment schema differs from the collection's");
        if self.header.dim != schema.dim || self.header.metric != metric {
            return Err(differs());
        }
        let mut remap = vec![ABSENT; schema.fields.len()];
        for (local, f) in self.fields.iter().enumerate() {
            let global = schema.field_index(&f.name).ok_or_else(differs)?;
            if schema.fields.get(global).map(|g| g.ty) != Some(f.ty) {
                return Err(differs());
            }
            if let Some(slot) = remap.get_mut(global) {
                *slot = local;
            }
        }
        self.remap = remap;
        Ok(())
    }

    /// The segment's own index of collection field `field`; `None` when the segment lacks it.
    fn local(&self, field: usize) -> Result<Option<usize>> {
        match self.remap.get(field) {
            None => Err(Error::Invalid(format!("field index {field} out of range"))),
            Some(&ABSENT) => Ok(None),
            Some(&l) => Ok(Some(l)),
        }
    }

    fn slice(&self, r: &Range<usize>) -> &[u8] {
        self.bytes.as_slice().get(r.clone()).unwrap_or(&[])
    }

    /// The whole file's bytes (attach copies them and derives the content id from them).
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// All vectors, row-major (`rows * dim`).
    #[must_use]
    pub fn vectors(&self) -> &[f32] {
        cast(self.slice(&self.vectors))
    }

    /// The vector of `row`.
    #[must_use]
    pub fn vector(&self, row: usize) -> &[f32] {
        let d = self.dim();
        self.vectors().get(row * d..(row + 1) * d).unwrap_or(&[])
    }

    /// The id sections.
    fn id_view(&self) -> IdsView<'_> {
        IdsView::new(self.slice(&self.ids), self.slice(&self.id_index))
    }

    /// Row -> id.
    #[must_use]
    pub fn ids(&self) -> &[u64] {
        self.id_view().ids()
    }

    /// The id of `row`.
    #[must_use]
    pub fn id(&self, row: usize) -> u64 {
        self.id_view().id(row)
    }

    /// The row holding `id`, by binary search of the id index (checked on first use).
    pub fn row_of(&self, id: u64) -> Result<Option<u32>> {
        self.check_id_index()?;
        Ok(self.id_view().row_of(id))
    }

    /// Checks the id index once: its checksum, then that it is sorted, unique and matches the
    /// ids (done by the first id lookup; a writer calls it before a commit).
    pub fn check_id_index(&self) -> Result<()> {
        let outcome = self.id_index_check.get_or_init(|| {
            for s in self.sections.iter().filter(|s| s.kind == SectionKind::IdIndex) {
                self.check_section_crc(s)?;
            }
            IdsView::parse(self.slice(&self.ids), self.slice(&self.id_index)).map(|_| ()).map_err(|(kind, reason)| {
                Failure::Corrupted {
                    region: kind.name().into(),
                    offset: self.id_index.start as u64,
                    reason: reason.into(),
                }
            })
        });
        outcome.clone().map_err(|f| f.error(&self.path))
    }

    fn check_section_crc(&self, s: &SectionEntry) -> std::result::Result<(), Failure> {
        let got = crc32c::crc32c(self.slice(&(s.offset as usize..(s.offset + s.len) as usize)));
        if got == s.crc {
            Ok(())
        } else {
            Err(Failure::Checksum {
                region: format!("{} section (field {})", s.kind.name(), s.field),
                offset: s.offset,
                expected: s.crc,
                got,
            })
        }
    }

    /// Checks the sections of the segment's field `local` once: their checksums, then the
    /// structure of its offsets or dictionary and bitmaps.
    fn check_field(&self, local: usize) -> Result<()> {
        let Some(cell) = self.field_checks.get(local) else { return Ok(()) };
        let outcome = cell.get_or_init(|| {
            let own = |s: &&SectionEntry| {
                is_deferred(s.kind) && s.kind != SectionKind::IdIndex && usize::from(s.field) == local
            };
            for s in self.sections.iter().filter(own) {
                self.check_section_crc(s)?;
            }
            let offset_of = |kind: SectionKind| {
                self.sections.iter().find(|s| s.kind == kind && usize::from(s.field) == local).map_or(0, |s| s.offset)
            };
            let failed = |(kind, reason): (SectionKind, &'static str)| Failure::Corrupted {
                region: kind.name().into(),
                offset: offset_of(kind),
                reason: reason.into(),
            };
            let b = self.bytes.as_slice();
            match self.columns.get(local) {
                Some(col @ ColumnRanges::Keyword { .. }) => {
                    let validity = self
                        .sections
                        .iter()
                        .find(|s| s.kind == SectionKind::Validity && usize::from(s.field) == local)
                        .map_or(&[][..], |s| self.slice(&(s.offset as usize..(s.offset + s.len) as usize)));
                    match col.keyword_sections(b) {
                        Some(sections) => KeywordView::parse(sections, validity).map(|_| ()).map_err(failed),
                        None => Ok(()),
                    }
                }
                Some(ColumnRanges::Var { validity, offsets, data, ty }) => {
                    VarView::parse(self.slice(validity), self.slice(offsets), self.slice(data), *ty)
                        .map(|_| ())
                        .map_err(failed)
                }
                Some(ColumnRanges::Fixed { .. }) | None => Ok(()),
            }
        });
        outcome.clone().map_err(|f| f.error(&self.path))
    }

    /// The column of collection field `field` (its sections checked on first use); `None` when
    /// the segment lacks the field.
    fn column(&self, field: usize) -> Result<Option<&ColumnRanges>> {
        let Some(local) = self.local(field)? else { return Ok(None) };
        let col = self.columns.get(local).ok_or_else(|| Error::Invalid(format!("field index {field} out of range")))?;
        self.check_field(local)?;
        Ok(Some(col))
    }

    /// The keyword view of collection field `field`; `None` when the segment lacks the field.
    fn keywords(&self, field: usize) -> Result<Option<KeywordView<'_>>> {
        match self.column(field)? {
            None => Ok(None),
            Some(col) => col
                .keyword_sections(self.bytes.as_slice())
                .map(|s| Some(KeywordView::new(s)))
                .ok_or_else(|| Error::Invalid(format!("field {field} is not a keyword field"))),
        }
    }

    /// The value of `field` in `row`, `None` when null.
    pub fn value(&self, row: usize, field: usize) -> Result<Option<Value>> {
        if row >= self.rows() {
            return Err(Error::Invalid(format!("row {row} out of range")));
        }
        let Some(col) = self.column(field)? else { return Ok(None) };
        let bad = |region: &str, reason: &str| Error::corrupted(&self.path, region, 0, reason);
        match col {
            ColumnRanges::Fixed { validity, data, ty } => FixedView::new(self.slice(validity), self.slice(data), *ty)
                .value(row)
                .map_err(|r| bad("fixed column", r)),
            ColumnRanges::Var { validity, offsets, data, ty } => {
                VarView::new(self.slice(validity), self.slice(offsets), self.slice(data), *ty)
                    .value(row)
                    .map_err(|r| bad("var data", r))
            }
            ColumnRanges::Keyword { .. } => {
                let view = col.keyword_sections(self.bytes.as_slice()).map(KeywordView::new);
                Ok(view.and_then(|v| v.value(row)).map(|s| Value::Keyword(s.to_owned())))
            }
        }
    }

    /// Rows whose keyword `field` equals `value` (empty when absent).
    pub fn keyword_rows(&self, field: usize, value: &str) -> Result<RoaringBitmap> {
        let Some(view) = self.keywords(field)? else { return Ok(RoaringBitmap::new()) };
        let Some(code) = view.code_of(value) else { return Ok(RoaringBitmap::new()) };
        self.keyword_code_rows(field, &view, code)
    }

    fn keyword_code_rows(&self, field: usize, view: &KeywordView<'_>, code: u32) -> Result<RoaringBitmap> {
        view.rows(code, self.rows()).map_err(|reason| {
            let offset = self.field_section(SectionKind::BitmapData, field).ok().flatten().map_or(0, |(o, _)| o);
            Error::corrupted(&self.path, "bitmaps", offset, reason)
        })
    }

    /// Distinct values of a keyword field with their row counts.
    pub fn keyword_values(&self, field: usize) -> Result<Vec<(String, u64)>> {
        let Some(view) = self.keywords(field)? else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(view.len());
        for code in 0..view.len() as u32 {
            out.push((view.entry(code).to_owned(), self.keyword_code_rows(field, &view, code)?.len()));
        }
        Ok(out)
    }

    /// The frozen graph, when the segment has one.
    #[must_use]
    pub fn graph(&self) -> Option<Result<super::graph::GraphView<'_>>> {
        let s = self.sections.iter().find(|s| s.kind == SectionKind::Graph)?;
        let r = s.offset as usize..(s.offset + s.len) as usize;
        Some(
            super::graph::GraphView::parse(self.slice(&r), self.rows())
                .map_err(|e| Error::corrupted(&self.path, "graph", s.offset, e.0)),
        )
    }

    /// The quantized codes, when the segment has them.
    #[must_use]
    pub fn codes(&self) -> Option<Result<super::codes::CodesView<'_>>> {
        let s = self.sections.iter().find(|s| s.kind == SectionKind::QuantCodes)?;
        let r = s.offset as usize..(s.offset + s.len) as usize;
        Some(
            super::codes::CodesView::parse(self.slice(&r), self.rows(), self.dim())
                .map_err(|e| Error::corrupted(&self.path, "codes", s.offset, e)),
        )
    }

    /// The section of `kind` for collection field `field` (the field's sections checked on first
    /// use); `None` when the segment lacks either.
    fn field_section(&self, kind: SectionKind, field: usize) -> Result<Option<(u64, &[u8])>> {
        let Some(local) = self.local(field)? else { return Ok(None) };
        self.check_field(local)?;
        let s = self.sections.iter().find(|s| s.kind == kind && usize::from(s.field) == local);
        Ok(s.map(|s| (s.offset, self.slice(&(s.offset as usize..(s.offset + s.len) as usize)))))
    }

    /// The range index of `field` (integer, float, timestamp, bool), when the segment has one.
    #[must_use]
    pub fn ranges(&self, field: usize) -> Option<Result<super::ranges::RangesView<'_>>> {
        let (offset, b) = match self.field_section(SectionKind::Ranges, field) {
            Err(e) => return Some(Err(e)),
            Ok(found) => found?,
        };
        Some(
            super::ranges::RangesView::parse(b, self.rows())
                .map_err(|e| Error::corrupted(&self.path, "range index", offset, e)),
        )
    }

    /// The spatial index of geo bbox `field`, when the segment has one.
    #[must_use]
    pub fn geo(&self, field: usize) -> Option<Result<super::geo::GeoView<'_>>> {
        let (offset, b) = match self.field_section(SectionKind::Geo, field) {
            Err(e) => return Some(Err(e)),
            Ok(found) => found?,
        };
        Some(
            super::geo::GeoView::parse(b, self.rows())
                .map_err(|e| Error::corrupted(&self.path, "geo index", offset, e)),
        )
    }

    /// Rows where `field` is not null (from its validity bits); `None` for a field index out of
    /// range, an error when the field's sections fail their check.
    #[must_use]
    pub fn present_rows(&self, field: usize) -> Option<Result<RoaringBitmap>> {
        if self.local(field).ok()?.is_none() {
            return Some(Ok(RoaringBitmap::new()));
        }
        let bits = match self.field_section(SectionKind::Validity, field) {
            Err(e) => return Some(Err(e)),
            Ok(found) => found?.1,
        };
        let mut out = RoaringBitmap::from_lsb0_bytes(0, bits);
        out.remove_range(self.rows() as u32..);
        Some(Ok(out))
    }

    /// The search calibration stored at build, when the segment has one: `(ef, recall@10,
    /// queries)`. `None` also for a malformed section (search then uses its defaults).
    #[must_use]
    pub fn calibration(&self) -> Option<(u32, f32, u32)> {
        self.calibration
    }

    fn read_calibration(&self) -> Option<(u32, f32, u32)> {
        let s = self.sections.iter().find(|s| s.kind == SectionKind::Calibration)?;
        let b = self.slice(&(s.offset as usize..(s.offset + s.len) as usize));
        let word = |i: usize| b.get(i * 4..i * 4 + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
        let (ef, recall, queries) = (word(0)?, word(1)?, word(2)?);
        (b.len() == 12 && ef > 0 && recall <= 10_000).then(|| (ef, recall as f32 / 10_000.0, queries))
    }

    /// Bytes of each index section (graph, codes), for `info`.
    #[must_use]
    pub fn index_bytes(&self) -> Vec<(SectionKind, u64)> {
        self.sections
            .iter()
            .filter(|s| matches!(s.kind, SectionKind::Graph | SectionKind::QuantCodes))
            .map(|s| (s.kind, s.len))
            .collect()
    }

    /// Checks every section's checksum, including the bulk ones, and decodes every value.
    #[must_use]
    pub fn verify(&self) -> Vec<Damage> {
        let mut damage = Vec::new();
        for s in &self.sections {
            let r = s.offset as usize..(s.offset + s.len) as usize;
            let got = crc32c::crc32c(self.slice(&r));
            if got != s.crc {
                damage.push(Damage {
                    region: format!("{} section (field {})", s.kind.name(), s.field),
                    offset: s.offset,
                    reason: format!("checksum mismatch: expected {:#010x}, got {got:#010x}", s.crc),
                });
            }
        }
        if damage.is_empty() {
            for f in 0..self.fields.len() {
                if let Ok(Some(view)) = self.keywords(f) {
                    for code in 0..view.len() as u32 {
                        if let Err(e) = self.keyword_code_rows(f, &view, code) {
                            damage.push(Damage { region: "bitmaps".into(), offset: 0, reason: e.to_string() });
                        }
                    }
                }
                for row in 0..self.rows() {
                    if let Err(e) = self.value(row, f) {
                        damage.push(Damage { region: format!("field {f}"), offset: 0, reason: e.to_string() });
                        break;
                    }
                }
            }
        }
        damage
    }
}

/// Where each section is, by `(kind, field)`.
type SectionMap = HashMap<(SectionKind, u16), Range<usize>>;

/// The container below the header: the footer, the section table, and every section's bounds,
/// alignment, uniqueness and (for the sections neither bulk nor deferred) checksum.
fn section_table(path: &Path, bytes: &Bytes) -> Result<(Vec<SectionEntry>, SectionMap)> {
    let b = bytes.as_slice();
    let file_len = b.len();
    if file_len < HEADER_LEN + FOOTER_LEN {
        return Err(Error::corrupted(path, "footer", 0, "file shorter than header and footer"));
    }
    let footer_at = file_len - FOOTER_LEN;
    let footer = Footer::decode(b.get(footer_at..).unwrap_or(&[]))
        .map_err(|e| header_error(path, "footer", footer_at as u64, &e))?;
    if footer.file_len != file_len as u64 {
        return Err(Error::corrupted(
            path,
            "footer",
            footer_at as u64,
            format!("file is {file_len} bytes, footer says {}", footer.file_len),
        ));
    }
    if footer.section_count > MAX_SECTIONS {
        return Err(Error::corrupted(path, "footer", footer_at as u64, "too many sections"));
    }
    let table_len = footer.section_count as usize * ENTRY_LEN;
    let table_start = footer.table_offset as usize;
    let table = b
        .get(table_start..table_start.saturating_add(table_len))
        .filter(|_| table_start.saturating_add(table_len) == footer_at && table_start >= HEADER_LEN)
        .ok_or_else(|| Error::corrupted(path, "section table", footer.table_offset, "table out of bounds"))?;
    check_crc(path, "section table", footer.table_offset, table, footer.table_crc)?;
    let mut sections = Vec::with_capacity(footer.section_count as usize);
    let mut by_key: HashMap<(SectionKind, u16), Range<usize>> = HashMap::new();
    for (i, chunk) in table.chunks_exact(ENTRY_LEN).enumerate() {
        let at = footer.table_offset + (i * ENTRY_LEN) as u64;
        let e = SectionEntry::decode(chunk)
            .ok_or_else(|| Error::corrupted(path, "section table", at, "unknown section kind"))?;
        let start = usize::try_from(e.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(e.len).unwrap_or(usize::MAX));
        if start < HEADER_LEN || end > table_start || start % SECTION_ALIGN != 0 {
            return Err(Error::corrupted(path, e.kind.name(), e.offset, "section out of bounds or misaligned"));
        }
        if matches!(e.kind, SectionKind::Vectors | SectionKind::Graph | SectionKind::QuantCodes) {
            bytes.advise_random(start..end);
        }
        if !e.kind.is_bulk() && !is_deferred(e.kind) {
            let region = format!("{} section (field {})", e.kind.name(), e.field);
            check_crc(path, &region, e.offset, b.get(start..end).unwrap_or(&[]), e.crc)?;
        }
        if by_key.insert((e.kind, e.field), start..end).is_some() {
            return Err(Error::corrupted(path, e.kind.name(), e.offset, "section declared twice"));
        }
        sections.push(e);
    }
    Ok((sections, by_key))
}

fn parse_schema(b: &[u8]) -> Option<Vec<FieldDef>> {
    let mut d = Dec::new(b);
    let n = d.u32().ok()? as usize;
    let mut fields = Vec::with_capacity(n.min(b.len() / 5));
    for _ in 0..n {
        let ty = FieldType::from_tag(d.u8().ok()?)?;
        let name = std::str::from_utf8(d.bytes().ok()?).ok()?.to_owned();
        fields.push(FieldDef { name, ty });
    }
    (d.remaining() == 0).then_some(fields)
}
