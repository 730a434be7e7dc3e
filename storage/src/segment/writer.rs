//! `SegmentWriter`: streams rows into a new segment file, section by section.
//!
//! The writer makes one pass over the rows per section, so a [`RowSource`] only needs random
//! access (the in-memory table when flushing, mapped segments when compacting), never a copy
//! of all rows in memory.

use std::collections::BTreeMap;
use std::path::Path;

use roaring::RoaringBitmap;

use super::footer::{Footer, Header, SECTION_ALIGN, SectionEntry, SectionKind, VERSION};
use crate::codec::Enc;
use crate::error::{Error, Result};
use crate::io::{Vfs, WriteFile};
use crate::schema::{FieldType, Metric, Schema, Value};

/// Rows to be written into a segment, in row order.
pub trait RowSource: Sync {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Id of `row`.
    fn id(&self, row: usize) -> u64;
    /// Vector of `row` (`dim` components).
    fn vector(&self, row: usize) -> &[f32];
    /// Value of `field` in `row`.
    fn value(&self, row: usize, field: usize) -> Result<Option<Value>>;
    /// The vectors of rows `start..start + n`, contiguous, when the source holds them so
    /// (the writer then copies them in one piece); `None` by default.
    fn vector_block(&self, start: usize, n: usize) -> Option<&[f32]> {
        let _ = (start, n);
        None
    }
}

const FLUSH_AT: usize = 1 << 20;

/// Buffers writes to the file and keeps the running section checksum. Without a file it keeps
/// every byte in `buf`: a part of the segment built on another thread, appended later with
/// [`Sink::append`].
struct Sink {
    file: Option<Box<dyn WriteFile>>,
    buf: Vec<u8>,
    pos: u64,
    entries: Vec<SectionEntry>,
    open: Option<(SectionKind, u16, u64, u32)>,
}

impl Sink {
    fn in_memory() -> Sink {
        Sink { file: None, buf: Vec::new(), pos: 0, entries: Vec::new(), open: None }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some((_, _, _, crc)) = &mut self.open {
            *crc = crc32c::crc32c_append(*crc, bytes);
        }
        self.pos += bytes.len() as u64;
        let Some(file) = &mut self.file else {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        };
        if bytes.len() >= FLUSH_AT {
            // Large pieces go to the file as they are, without a copy into the buffer.
            file.write_all(&self.buf)?;
            self.buf.clear();
            return file.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= FLUSH_AT {
            file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Appends the sections of an in-memory `part` (its offsets start at 0 and its sections are
    /// aligned relative to that), at the next aligned position.
    fn append(&mut self, part: Sink) -> Result<()> {
        let pad = (SECTION_ALIGN - (self.pos as usize % SECTION_ALIGN)) % SECTION_ALIGN;
        self.put(&vec![0u8; pad])?;
        let base = self.pos;
        self.put(&part.buf)?;
        self.entries.extend(part.entries.into_iter().map(|e| SectionEntry { offset: base + e.offset, ..e }));
        Ok(())
    }

    fn begin(&mut self, kind: SectionKind, field: usize) -> Result<()> {
        let pad = (SECTION_ALIGN - (self.pos as usize % SECTION_ALIGN)) % SECTION_ALIGN;
        self.put(&vec![0u8; pad])?;
        self.open = Some((kind, field as u16, self.pos, 0));
        Ok(())
    }

    fn end(&mut self) {
        if let Some((kind, field, offset, crc)) = self.open.take() {
            self.entries.push(SectionEntry { kind, field, offset, len: self.pos - offset, crc });
        }
    }

    fn section(&mut self, kind: SectionKind, field: usize, bytes: &[u8]) -> Result<()> {
        self.begin(kind, field)?;
        self.put(bytes)?;
        self.end();
        Ok(())
    }
}

/// Encodes the schema section: `count u32`, then `type u8, name` per field.
#[must_use]
pub fn encode_schema(schema: &Schema) -> Vec<u8> {
    let mut e = Enc::default();
    e.u32(schema.fields.len() as u32);
    for f in &schema.fields {
        e.u8(f.ty.tag());
        e.bytes(f.name.as_bytes());
    }
    e.buf
}

fn validity(src: &dyn RowSource, field: usize) -> Result<Vec<u8>> {
    let mut bits = vec![0u8; src.rows().div_ceil(8)];
    for row in 0..src.rows() {
        if src.value(row, field)?.is_some()
            && let Some(b) = bits.get_mut(row / 8)
        {
            *b |= 1 << (row % 8);
        }
    }
    Ok(bits)
}

fn write_fixed(sink: &mut Sink, src: &dyn RowSource, field: usize, ty: FieldType) -> Result<()> {
    let width = ty.fixed_width().unwrap_or(0);
    sink.begin(SectionKind::Fixed, field)?;
    let mut e = Enc::default();
    for row in 0..src.rows() {
        e.buf.clear();
        match src.value(row, field)? {
            Some(v) => v.encode_fixed(&mut e),
            None => e.buf.resize(width, 0),
        }
        sink.put(&e.buf)?;
    }
    sink.end();
    Ok(())
}

fn write_var(sink: &mut Sink, src: &dyn RowSource, field: usize) -> Result<()> {
    sink.begin(SectionKind::VarOffsets, field)?;
    let mut off = 0u64;
    sink.put(&off.to_le_bytes())?;
    for row in 0..src.rows() {
        off += src.value(row, field)?.as_ref().and_then(Value::var_bytes).map_or(0, <[u8]>::len) as u64;
        sink.put(&off.to_le_bytes())?;
    }
    sink.end();
    sink.begin(SectionKind::VarData, field)?;
    for row in 0..src.rows() {
        if let Some(v) = src.value(row, field)? {
            sink.put(v.var_bytes().unwrap_or(&[]))?;
        }
    }
    sink.end();
    Ok(())
}

fn write_keyword(sink: &mut Sink, src: &dyn RowSource, field: usize) -> Result<()> {
    let mut dict: BTreeMap<String, RoaringBitmap> = BTreeMap::new();
    for row in 0..src.rows() {
        if let Some(Value::Keyword(s)) = src.value(row, field)? {
            dict.entry(s).or_default().insert(row as u32);
        }
    }
    let mut offsets = Enc::default();
    let mut data = Vec::new();
    offsets.u64(0);
    for k in dict.keys() {
        data.extend_from_slice(k.as_bytes());
        offsets.u64(data.len() as u64);
    }
    sink.section(SectionKind::DictOffsets, field, &offsets.buf)?;
    sink.section(SectionKind::DictData, field, &data)?;
    let mut codes = vec![u32::MAX; src.rows()];
    for (code, bitmap) in dict.values().enumerate() {
        for row in bitmap {
            if let Some(c) = codes.get_mut(row as usize) {
                *c = code as u32;
            }
        }
    }
    let mut e = Enc::default();
    for c in &codes {
        e.u32(*c);
    }
    sink.section(SectionKind::Codes, field, &e.buf)?;
    let mut offsets = Enc::default();
    let mut data = Vec::new();
    offsets.u64(0);
    for bitmap in dict.values() {
        bitmap.serialize_into(&mut data).map_err(|e| Error::Invalid(e.to_string()))?;
        offsets.u64(data.len() as u64);
    }
    sink.section(SectionKind::BitmapOffsets, field, &offsets.buf)?;
    sink.section(SectionKind::BitmapData, field, &data)?;
    Ok(())
}

/// The start of a segment file: header, schema, vectors, ids and the id index.
fn write_head(
    file: Box<dyn WriteFile>,
    header: &Header,
    schema: &Schema,
    src: &dyn RowSource,
    pairs: &[(u64, u64)],
) -> Result<Sink> {
    let rows = src.rows();
    let dim = schema.dim as usize;
    let mut sink =
        Sink { file: Some(file), buf: Vec::with_capacity(FLUSH_AT * 2), pos: 0, entries: Vec::new(), open: None };
    sink.put(&header.encode())?;
    sink.section(SectionKind::Schema, 0, &encode_schema(schema))?;

    sink.begin(SectionKind::Vectors, 0)?;
    let block_rows = (FLUSH_AT / (dim * 4).max(1)).max(1);
    let mut row_bytes = Vec::with_capacity(dim * 4);
    let mut row = 0;
    // Little-endian f32 is the file's layout: a contiguous block is written as it is in memory.
    while cfg!(target_endian = "little") && row < rows {
        let n = block_rows.min(rows - row);
        let Some(block) = src.vector_block(row, n).filter(|b| b.len() == n * dim) else { break };
        sink.put(bytemuck::cast_slice(block))?;
        row += n;
    }
    for row in row..rows {
        let v = src.vector(row);
        if v.len() != dim {
            return Err(Error::Invalid(format!("row {row} has {} components, expected {dim}", v.len())));
        }
        row_bytes.clear();
        for x in v {
            row_bytes.extend_from_slice(&x.to_le_bytes());
        }
        sink.put(&row_bytes)?;
    }
    sink.end();

    let mut e = Enc::default();
    (0..rows).for_each(|r| e.u64(src.id(r)));
    sink.section(SectionKind::Ids, 0, &e.buf)?;
    let mut e = Enc::default();
    for (id, row) in pairs {
        e.u64(*id);
        e.u64(*row);
    }
    sink.section(SectionKind::IdIndex, 0, &e.buf)?;

    Ok(sink)
}

/// The field sections one worker built, by field number.
type FieldParts = Vec<(usize, Result<Sink>)>;

/// Starts the workers that build the field sections (validity, values, indexes), each taking
/// the next field not yet taken; each returns its parts by field number.
fn spawn_field_parts<'s, 'e: 's>(
    scope: &'s std::thread::Scope<'s, 'e>,
    schema: &'e Schema,
    src: &'e dyn RowSource,
) -> Vec<std::thread::ScopedJoinHandle<'s, FieldParts>> {
    let fields = schema.fields.len();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(fields);
    (0..workers)
        .map(|_| {
            let next = std::sync::Arc::clone(&next);
            scope.spawn(move || {
                let mut out = Vec::new();
                loop {
                    let field = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(def) = schema.fields.get(field) else { break };
                    out.push((field, field_part(src, field, def.ty)));
                }
                out
            })
        })
        .collect()
}

/// The sections of one field, in memory: validity, values, then its range or geo index.
fn field_part(src: &dyn RowSource, field: usize, ty: FieldType) -> Result<Sink> {
    let mut sink = Sink::in_memory();
    sink.section(SectionKind::Validity, field, &validity(src, field)?)?;
    match ty {
        FieldType::Keyword => write_keyword(&mut sink, src, field)?,
        FieldType::Text | FieldType::Blob => write_var(&mut sink, src, field)?,
        ty => write_fixed(&mut sink, src, field, ty)?,
    }
    if let Some(bytes) = super::ranges::index_field(src, field, ty)? {
        sink.section(SectionKind::Ranges, field, &bytes)?;
    }
    if let Some(bytes) = super::geo::index_field(src, field, ty)? {
        sink.section(SectionKind::Geo, field, &bytes)?;
    }
    Ok(sink)
}

/// Writes a whole segment to `path` and syncs it; returns the file length.
///
/// The caller syncs the directory and publishes the segment in the manifest; until then the
/// file is an orphan that the next writer open removes.
pub fn write_segment(
    vfs: &dyn Vfs,
    path: &Path,
    segment_id: u64,
    schema: &Schema,
    src: &dyn RowSource,
    extra: &[(SectionKind, Vec<u8>)],
) -> Result<u64> {
    let rows = src.rows();
    let mut pairs: Vec<(u64, u64)> = (0..rows).map(|r| (src.id(r), r as u64)).collect();
    pairs.sort_unstable();
    if let Some((a, _)) = pairs.iter().zip(pairs.iter().skip(1)).find(|(a, b)| a.0 == b.0) {
        return Err(Error::Invalid(format!("id {} appears twice in one segment", a.0)));
    }
    let header = Header {
        version: VERSION,
        dim: schema.dim,
        metric: match schema.metric {
            Metric::Cosine => 0,
            Metric::InnerProduct => 1,
        },
        rows: rows as u64,
        field_count: schema.fields.len() as u32,
        segment_id,
    };
    let file = vfs.create(path)?;
    // The field sections are built on worker threads while this one writes the vectors.
    let (head, fields) = std::thread::scope(|scope| {
        let workers = spawn_field_parts(scope, schema, src);
        let head = write_head(file, &header, schema, src, &pairs);
        let mut parts: Vec<(usize, Result<Sink>)> = Vec::new();
        for w in workers {
            parts.extend(w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        parts.sort_by_key(|(field, _)| *field);
        (head, parts.into_iter().map(|(_, part)| part))
    });
    let mut sink = head?;
    for part in fields {
        sink.append(part?)?;
    }

    for (kind, bytes) in extra {
        if !matches!(kind, SectionKind::Graph | SectionKind::QuantCodes | SectionKind::Calibration) {
            return Err(Error::Invalid(format!("{} is not an index section", kind.name())));
        }
        sink.section(*kind, 0, bytes)?;
    }

    let pad = (8 - (sink.pos as usize % 8)) % 8;
    sink.put(&vec![0u8; pad])?;
    let table_offset = sink.pos;
    let mut table = Enc::default();
    sink.entries.iter().for_each(|s| s.encode(&mut table));
    let table_crc = crc32c::crc32c(&table.buf);
    let count = sink.entries.len() as u32;
    sink.put(&table.buf)?;
    let file_len = sink.pos + super::footer::FOOTER_LEN as u64;
    let footer = Footer { table_offset, section_count: count, table_crc, file_len };
    sink.put(&footer.encode())?;
    let rest = std::mem::take(&mut sink.buf);
    let file = sink.file.as_mut().ok_or_else(|| Error::Invalid("segment sink without a file".into()))?;
    file.write_all(&rest)?;
    file.sync()?;
    Ok(file_len)
}
